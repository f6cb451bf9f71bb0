"""As run on 2026-12-04 (from the folder holding big_build): the S1 L2 / L3 rows of big_build's training
references written as single-slice NIfTI files (every other reference L2, the others L3), to be built
again as references of their own: `ct-degradbench build --source noisy/noisy_refs --nifti-axes PLS
--min-body-fraction 0.1 --num-proc 2 --out noisy_build`."""
import os

import nibabel as nib
import numpy as np

from ctdegradbench.model.data import load_config
from ctdegradbench.model.image_processing_sespect import native_statistics

rows, _ = load_config(["big_build"], "all", "train")
keep = [i for i, (s, lv) in enumerate(zip(rows["setting"], rows["level"])) if s == "S1" and lv in (2, 3)]
sub = rows.select(keep).select_columns(["reference_id", "level", "pixel_spacing_mm", "image"]).with_format("numpy")
os.makedirs("noisy/noisy_refs")      # a new folder: nothing of anyone's is replaced (it stops if one is there)
by_ref = {}
for i in range(len(sub)):
    r = sub[i]
    by_ref.setdefault(str(r["reference_id"]), {})[int(r["level"])] = (np.asarray(r["image"], np.float32),
                                                                      float(r["pixel_spacing_mm"]))
noise = {2: [], 3: []}
for k, rid in enumerate(sorted(by_ref)):
    level = 2 if k % 2 == 0 else 3
    img, sp = by_ref[rid][level]
    noise[level].append(float(native_statistics(img, sp)[0]))
    nib.save(nib.Nifti1Image(np.round(img).astype(np.int16)[:, :, None], np.diag([sp, sp, 3.0, 1.0])),
             f"noisy/noisy_refs/noisy_{k:03d}.nii.gz")
for lv, v in noise.items():
    print("S1 L%d rows: noise median %.1f min %.1f max %.1f (n %d)" % (lv, np.median(v), min(v), max(v), len(v)))
