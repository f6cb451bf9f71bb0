"""Issue 16's cases run as a new user would, through the installed CLI:

    python benchmarks/user_cases.py VENV_BIN DATA > benchmarks/results/user_cases.md

VENV_BIN: the bin folder holding ct-degradbench; DATA: a small export (`ct-degradbench build --configs
single_noise --out DATA`). Each case runs in a temp folder holding "the user's" files and records the exit
code, the error lines, whether a traceback appeared, whether every user file is unchanged (SHA-256 before
and after), the time and the last line the user reads. The full-disk case mounts a 3 MB tmpfs (root only).
"""
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BIN = Path(sys.argv[1] if len(sys.argv) > 2 else ".venv/bin").resolve()
DATA = Path(sys.argv[2] if len(sys.argv) > 2 else "bench").resolve()
CLI = str(BIN / "ct-degradbench")
PY = str(BIN / "python")
ROWS = []


def snapshot(folder: Path) -> dict:
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "ct-degradbench-case" not in p.name:
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def run(name, args, cwd: Path, user: list[Path] = (), expect="refused", timeout=900):
    """Run ``ct-degradbench ARGS`` in cwd; user: the user's files/folders that must not change."""
    before = {str(u): snapshot(u) if u.is_dir() else hashlib.sha256(u.read_bytes()).hexdigest() for u in user}
    t0 = time.time()
    p = subprocess.run([CLI] + args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"})
    dt = time.time() - t0
    kept = all((Path(u).exists() and (snapshot(Path(u)) if Path(u).is_dir()
                                      else hashlib.sha256(Path(u).read_bytes()).hexdigest()) == h)
               for u, h in before.items())
    out = (p.stdout + p.stderr).strip().splitlines()
    err = [l for l in p.stderr.strip().splitlines() if l.strip()]
    tb = any("Traceback" in l for l in out)
    verdict = [l for l in p.stdout.splitlines() if l.startswith(("OK", "FAIL"))]
    last = (verdict[-1] if verdict else err[-1] if err else (out[-1] if out else "")).strip()
    ROWS.append((name, " ".join(args)[:90], p.returncode, len(err), tb, kept if user else "-", f"{dt:.1f}",
                 last[:160].replace("|", "/")))
    print(f"[{name}] rc={p.returncode} stderr_lines={len(err)} traceback={tb} kept={kept} {dt:.1f}s :: {last[:200]}",
          file=sys.stderr)
    return p


def user_folder(root: Path, name: str, files: dict) -> Path:
    d = root / name
    d.mkdir(parents=True, exist_ok=True)
    for f, text in files.items():
        (d / f).parent.mkdir(parents=True, exist_ok=True)
        (d / f).write_text(text)
    return d


def rewrite_manifest(folder: Path):
    """What an editor of the data would do: recompute every hash of the manifest."""
    from ctdegradbench.builder.dataset.row_hash import file_row_hashes   # noqa: E402
    m = json.loads((folder / "ct-degradbench-manifest.json").read_text())
    for rel, entry in m["files"].items():
        p = folder / rel
        entry["bytes"] = p.stat().st_size
        entry["sha256"] = hashlib.sha256(p.read_bytes()).hexdigest()
        if "row_sha256" in entry:
            entry["row_sha256"] = file_row_hashes(p)
            entry["rows"] = len(entry["row_sha256"])
    (folder / "ct-degradbench-manifest.json").write_text(json.dumps(m, indent=1))


def tamper(folder: Path, how: str):
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = folder / "data/single_noise/train-00000-of-00001.parquet"
    table = pq.read_table(path)
    rows = table.to_pylist()
    if how == "dropped":
        rows = rows[:-1]
    elif how == "edited":                                       # a 40x40 patch +30 HU in the last row
        img = np.asarray(rows[-1]["image"], dtype=np.int16)
        img[200:240, 200:240] += 30
        rows[-1]["image"] = img.tolist()
    elif how == "swapped":                                      # L0 and L3 images of the last reference
        i0 = max(i for i, r in enumerate(rows) if r["level"] == 0)
        i3 = max(i for i, r in enumerate(rows) if r["level"] == 3)
        rows[i0]["image"], rows[i3]["image"] = rows[i3]["image"], rows[i0]["image"]
    new = pa.Table.from_pylist(rows, schema=table.schema)
    pq.write_table(new, path)


def main():
    root = Path(tempfile.mkdtemp(prefix="cases-"))
    # ---- data loss
    d = user_folder(root, "train_out", {"README.md": "my notes\n", "config.json": "{\"mine\": 1}\n"})
    run("train --out existing folder", ["train", "--dataset", str(DATA), "--out", str(d), "--epochs", "1"], root, [d])
    proj = user_folder(root, "project", {"README.md": "# my project\n"})
    run("train --out .", ["train", "--dataset", str(DATA), "--out", ".", "--epochs", "1"], proj, [proj])
    for kind in ("iqa", "drift"):
        d = user_folder(root, f"bench_{kind}", {"results.json": "{}\n", "tables.md": "mine\n"})
        run(f"bench {kind} --out existing", ["bench", kind, "--dataset", str(DATA), "--out", str(d)], root, [d])
    d = user_folder(root, "eval_default", {"sespect_eval_test.json": "{\"mine\": 1}\n"})
    run("evaluate, default file exists", ["evaluate", "--dataset", str(DATA)], d, [d])
    d = user_folder(root, "build_beside", {".ds.cache/keep.txt": "cache\n", ".ds.old/keep.txt": "old\n",
                                            ".ds.lock": "my lock file\n"})
    user = [d / ".ds.cache", d / ".ds.old", d / ".ds.lock"]
    run("build beside .ds.cache/.ds.old/.ds.lock", ["build", "--configs", "single_noise", "--out", "ds"], d, user)
    leftovers = sorted(p.name for p in d.iterdir() if p.name.startswith(".ds") and p.name not in
                       (".ds.cache", ".ds.old", ".ds.lock"))
    ROWS.append(("  files left beside ds", "", "", "", "", "-", "", ", ".join(leftovers) or "none"))
    full = root / "full"                                   # a 3 MB disk (tmpfs; needs root)
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3M", "tmpfs", str(full)]).returncode == 0:
        run("build onto a full disk", ["build", "--configs", "single_noise", "--out", str(full / "ds")], root)
        subprocess.run(["umount", str(full)])
    # ---- verify that cannot be fooled
    for how in ("dropped", "edited", "swapped"):
        for rewrite in (False, True):
            v = root / f"verify_{how}_{int(rewrite)}"
            shutil.copytree(DATA, v)
            tamper(v, how)
            if rewrite:
                rewrite_manifest(v)
            label = f"verify, {how} row" + (", manifest rewritten" if rewrite else "")
            run(label, ["verify", str(v)], root, expect="fails")
            if rewrite and how != "dropped":
                run(label + ", --all", ["verify", "--all", str(v)], root, expect="fails")
    # ---- predict on bad inputs
    p = user_folder(root, "predict", {"notes.txt": "hello\n"})
    import pyarrow.parquet as pq
    row = pq.read_table(DATA / "data/single_noise/test-00000-of-00001.parquet").slice(0, 1).to_pylist()[0]
    good = np.asarray(row["image"], dtype=np.float32)
    spacing = str(row["pixel_spacing_mm"])
    np.save(p / "good.npy", good)
    bad = good.copy(); bad[10, 10] = np.nan; np.save(p / "nan.npy", bad)
    run("predict good.npy + nan.npy", ["predict", "good.npy", "nan.npy", "--pixel-spacing", spacing], p, expect="partial")
    inf = good.copy(); inf[5, 5] = np.inf; np.save(p / "inf.npy", inf)
    np.save(p / "huge.npy", good * 1e30)
    np.save(p / "complex.npy", good.astype(np.complex64))
    np.save(p / "tiny16.npy", good[:16, :16])
    np.save(p / "tiny10.npy", good[:10, :10])
    for f in ("inf.npy", "huge.npy", "complex.npy", "tiny16.npy", "tiny10.npy"):
        run(f"predict {f}", ["predict", f, "--pixel-spacing", spacing], p, expect="error")
    folder = p / "mixed"
    folder.mkdir()
    dcm = sorted(Path("/work/shared/ct-tcga-lung").glob("*.dcm"))[0]
    shutil.copy(dcm, folder / "good.dcm")
    (folder / "truncated.dcm").write_bytes(dcm.read_bytes()[:2000])
    (folder / "notes.txt").write_text("hello\n")
    shutil.copy(p / "good.npy", folder / "slice.npy")
    run("predict FOLDER (dcm, truncated dcm, txt, npy)", ["predict", str(folder)], p, [folder], expect="partial")
    npyf = p / "npys"
    npyf.mkdir()
    shutil.copy(p / "good.npy", npyf / "a.npy")
    from PIL import Image
    Image.fromarray((good + 1024).clip(0, 65535).astype(np.uint16)).save(npyf / "b.png")
    run("predict FOLDER of .npy + 16-bit PNG", ["predict", str(npyf), "--pixel-spacing", spacing], p, [npyf], expect="ok")
    # ---- bad checkpoints
    out = subprocess.run([PY, "-c", "import ctdegradbench.model as m; print(m.default_checkpoint())"],
                         capture_output=True, text=True)
    ckpt = Path(out.stdout.strip())
    def broken(name, edit):
        c = root / "ckpts" / name
        shutil.copytree(ckpt, c)
        edit(c)
        run(f"predict --model ({name})", ["predict", "good.npy", "--pixel-spacing", spacing, "--model", str(c)], p,
            expect="error")
    def cfg(c, change):
        j = json.loads((c / "config.json").read_text()); change(j)
        (c / "config.json").write_text(json.dumps(j))
    broken("truncated safetensors", lambda c: (c / "model.safetensors").write_bytes(
        (c / "model.safetensors").read_bytes()[:5000]))
    broken("garbage safetensors", lambda c: (c / "model.safetensors").write_bytes(os.urandom(4096)))
    broken("missing weights", lambda c: (c / "model.safetensors").unlink())
    broken("bad JSON", lambda c: (c / "config.json").write_text("{not json"))
    broken("wrong field type", lambda c: cfg(c, lambda j: j.update(fusion_dim="wide")))
    broken("dimension mismatch", lambda c: cfg(c, lambda j: j.update(fusion_dim=96)))
    broken("five labels", lambda c: cfg(c, lambda j: j.update(
        id2label={str(i): f"c{i}" for i in range(5)}, label2id={f"c{i}": i for i in range(5)})))
    broken("unknown backbone", lambda c: cfg(c, lambda j: j.update(backbone="resnet9000")))
    broken("other model type", lambda c: cfg(c, lambda j: j.update(model_type="bert")))
    # ---- evaluate / train on data without labels, empty export
    empty = root / "empty"
    shutil.copytree(DATA, empty)
    for f in (empty / "data").rglob("*.parquet"):
        t = pq.read_table(f); pq.write_table(t.slice(0, 0), f)
    run("evaluate on empty export", ["evaluate", "--dataset", str(empty), "--out", str(root / "e1.json")], root)
    run("train on empty export", ["train", "--dataset", str(empty), "--out", str(root / "t_empty")], root)
    nolabel = root / "nolabel"
    shutil.copytree(DATA, nolabel)
    for f in (nolabel / "data/single_noise").glob("*.parquet"):
        t = pq.read_table(f); pq.write_table(t.drop(["label"]), f)
    run("evaluate, rows without labels", ["evaluate", "--dataset", str(nolabel), "--out", str(root / "e2.json")], root)
    # ---- startup
    run("--version", ["--version"], root, expect="ok")
    run("--help", ["--help"], root, expect="ok")
    run("build --help", ["build", "--help"], root, expect="ok")
    run("bad option", ["build", "--no-such-option"], root, expect="error")
    run("bad value", ["build", "--image-size", "100", "--out", "x"], root, expect="error")
    print("| case | command | exit | stderr lines | traceback | user files kept | s | last line |")
    print("|---|---|---|---|---|---|---|---|")
    for r in ROWS:
        print("| " + " | ".join(str(x) for x in r) + " |")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
