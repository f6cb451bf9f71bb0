"""Patch data for the end-to-end CNN experiment (issue 21): every row of an export's split on the
model's 1 mm grid (the shipped processor), P body patches of S x S mm and the whole grid at 6 mm."""
import sys, numpy as np, torch, torch.nn.functional as F
from ctdegradbench.model.data import load_benchmark, load_references
from ctdegradbench.model.image_processing_sespect import SeSpeCTImageProcessor
from ctdegradbench.model.configuration_sespect import SeSpeCTConfig

P, S = 6, 48
folder, split, out = sys.argv[1], sys.argv[2], sys.argv[3]
proc = SeSpeCTImageProcessor()   # 1 mm, 384 px, as the shipped checkpoint
names = SeSpeCTConfig.from_pretrained("/work/main/model/checkpoint").label_names
data = load_benchmark([folder], split, label_names=names)
refs, _ = load_references([folder], split)

def one(hu, sp, rng):
    g = proc.to_grid(hu, sp)
    body = (g > -500).float()[None, None]
    frac = F.avg_pool2d(body, S, stride=4)[0, 0]
    ok = torch.nonzero(frac >= 0.97)
    if len(ok) < P:
        ok = torch.nonzero(frac >= frac.max() * 0.9)
    pick = ok[rng.choice(len(ok), P, replace=len(ok) < P)] * 4
    patches = torch.stack([g[r:r + S, c:c + S] for r, c in pick.tolist()])
    coarse = F.interpolate(g[None, None], size=(64, 64), mode="bilinear", antialias=True, align_corners=False)[0, 0]
    return patches.numpy().astype(np.float16), coarse.numpy().astype(np.float16)

rng = np.random.default_rng(0)
ims = data.dataset
pt, co = [], []
for i in range(len(data)):
    p, c = one(np.asarray(ims[i]["image"], np.float32), data.spacings[i], rng); pt.append(p); co.append(c)
    if i % 500 == 0: print(split, i, len(data), flush=True)
sid = np.array(data.dataset.select_columns(["sample_id"]).with_format(None)["sample_id"])
# clean rows: the split's references
from ctdegradbench.model.data import load_config
rds, _ = load_config([folder], "references", split)
rsp = np.asarray(rds["pixel_spacing_mm"], float)
rimg = rds.with_format("numpy", columns=["reference"])
rp, rc = [], []
for i in range(len(rds)):
    p, c = one(np.asarray(rimg[i]["reference"], np.float32), rsp[i], rng); rp.append(p); rc.append(c)
np.savez(out, patches=np.stack(pt), coarse=np.stack(co), labels=data.labels, levels=data.levels,
         settings=np.array(data.settings), sample_ids=sid, patients=np.array(data.patient_keys),
         ref_patches=np.stack(rp), ref_coarse=np.stack(rc), ref_patients=np.array(list(rds["patient_key"])) if "patient_key" in rds.column_names else np.array([]))
print("done", out, len(data), len(rds))
