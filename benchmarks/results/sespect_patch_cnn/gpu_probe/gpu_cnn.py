"""End-to-end CNN experiment (issue 21) on the GPU: 1 mm body patches + the slice at 6 mm, trained from
scratch; epoch chosen on validation ten-class accuracy; test on big_build_r3 (1680 rows) alone, as an
ensemble of seeds, and fused with the shipped checkpoint (geometric mean, weight 0.5, not fitted)."""
import json, os, sys, time, numpy as np, torch, torch.nn as nn, torch.nn.functional as F
dev = os.environ.get("DEV", "cuda"); SMOKE = bool(os.environ.get("SMOKE")); CLEAN = 10; OUT = os.environ.get("OUT", "."); HERE = os.path.dirname(__file__)
KNOTS_U8 = torch.tensor([0., 30., 230., 255.]); KNOTS_HU = torch.tensor([-1024., -200., 300., 3071.])
WIN = [(-160, 240), (-1000, 1000), (0, 3000)]
z = np.load(os.path.join(HERE, "patches.npz"))
def decode(u8):  # uint8 -> HU (piecewise linear inverse of the packing)
    x = u8.float(); out = torch.empty_like(x)
    for i in range(3):
        m = (x >= KNOTS_U8[i]) & (x <= KNOTS_U8[i + 1])
        out[m] = KNOTS_HU[i] + (x[m] - KNOTS_U8[i]) * (KNOTS_HU[i + 1] - KNOTS_HU[i]) / (KNOTS_U8[i + 1] - KNOTS_U8[i])
    return out
def load(name):
    return dict(p=decode(torch.from_numpy(z[name + "_patches"])).to(dev), c=decode(torch.from_numpy(z[name + "_coarse"])).to(dev),
                y=torch.from_numpy(z[name + "_labels"].astype(np.int64)).to(dev), l=torch.from_numpy(z[name + "_levels"].astype(np.float32)).to(dev))
tr, va, te = load("bb_train"), load("bb_val"), load("r3_test")
te_levels = z["r3_test_levels"]; shipped = np.load(os.path.join(HERE, "shipped_r3.npy"))
if SMOKE:
    tr, va, te = ({k: v[::25] for k, v in d.items()} for d in (tr, va, te)); te_levels, shipped = te_levels[::25], shipped[::25]
def windows(x): return torch.stack([((x - lo) / (hi - lo)).clamp(0, 1) for lo, hi in WIN], -3)
def block(i, o, s): return nn.Sequential(nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True))
class Enc(nn.Module):
    def __init__(s, w):
        super().__init__(); s.f = nn.Sequential(block(3, w, 1), block(w, w, 1), block(w, 2 * w, 2), block(2 * w, 2 * w, 1), block(2 * w, 4 * w, 2), block(4 * w, 4 * w, 2))
        s.dim = 8 * w
    def forward(s, x): h = s.f(x).flatten(2); return torch.cat([h.mean(2), h.std(2)], 1)
class Net(nn.Module):
    def __init__(s, w, coarse):
        super().__init__(); s.patch = Enc(w); s.coarse = Enc(w) if coarse else None
        d = 2 * s.patch.dim + (s.coarse.dim if coarse else 0)
        s.head = nn.Sequential(nn.Linear(d, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 12))
    def forward(s, p, c):
        b, n = p.shape[:2]; h = s.patch(windows(p).flatten(0, 1)).view(b, n, -1)
        parts = [h.mean(1), h.amax(1)] + ([s.coarse(windows(c))] if s.coarse is not None else [])
        o = s.head(torch.cat(parts, 1)); return o[:, :11], o[:, 11]
def augment(p, c):
    k = int(torch.randint(4, ())); p, c = torch.rot90(p, k, (-2, -1)), torch.rot90(c, k, (-2, -1))
    return (p.flip(-1), c.flip(-1)) if torch.rand(()) < 0.5 else (p, c)
def predict(net, d):
    net.eval()
    with torch.no_grad(): return torch.cat([torch.softmax(net(d["p"][i:i + 512], d["c"][i:i + 512])[0], 1) for i in range(0, len(d["y"]), 512)]).cpu().numpy()
def ten(prob): q = prob.copy(); q[:, CLEAN] = -1; return q.argmax(1)
def scores(prob, y):
    r = {"eleven": float((prob.argmax(1) == y).mean()), "ten": float((ten(prob) == y).mean())}
    r["ten_per_level"] = {f"L{l}": round(float((ten(prob) == y)[te_levels == l].mean()), 3) for l in range(4)}
    return r
def run(w, coarse, seed, epochs=2 if SMOKE else 40, bs=64):
    torch.manual_seed(seed); net = Net(w, coarse).to(dev)
    opt = torch.optim.AdamW(net.parameters(), 2e-3, weight_decay=1e-4); n = len(tr["y"])
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=epochs * (n // bs)); best, state = -1, None
    for ep in range(epochs):
        net.train(); perm = torch.randperm(n, device=dev)
        for i in range(0, n - bs + 1, bs):
            j = perm[i:i + bs]; p, c = augment(tr["p"][j], tr["c"][j]); lo, sv = net(p, c); y = tr["y"][j]; deg = y != CLEAN
            loss = F.cross_entropy(lo, y) + F.smooth_l1_loss(sv[deg], tr["l"][j][deg])
            opt.zero_grad(); loss.backward(); opt.step(); sched.step()
        acc = float((ten(predict(net, va)) == va["y"].cpu().numpy()).mean())
        if acc > best: best, state, best_ep = acc, {k: v.clone() for k, v in net.state_dict().items()}, ep
    net.load_state_dict(state); return predict(net, te), best, best_ep
y = te["y"].cpu().numpy(); results = {"shipped": scores(shipped, y)}; print("shipped", results["shipped"], flush=True)
for w, coarse in [(16, True), (32, True), (32, False)]:
    t0 = time.time(); probs = []
    for seed in range(3):
        pr, vbest, ep = run(w, coarse, seed); probs.append(pr)
        results[f"w{w}_c{int(coarse)}_s{seed}"] = {**scores(pr, y), "val_ten": vbest, "epoch": ep}
    ens = np.mean(probs, 0); fused = np.exp(0.5 * np.log(shipped + 1e-9) + 0.5 * np.log(ens + 1e-9))
    results[f"w{w}_c{int(coarse)}_ensemble"] = scores(ens, y); results[f"w{w}_c{int(coarse)}_fused_with_shipped"] = scores(fused, y)
    np.save(f"{OUT}/cnn_w{w}_c{int(coarse)}_r3_probs.npy", ens)
    print(w, coarse, f"{time.time() - t0:.0f}s", {k: v for k, v in results.items() if k.startswith(f"w{w}_c{int(coarse)}")}, flush=True)
json.dump(results, open(f"{OUT}/cnn_results.json", "w"), indent=1)
