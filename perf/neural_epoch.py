"""Seconds per training epoch of the neural models on CPU (or --device cuda).

Synthetic reciprocal-lattice clouds (random lattices, h,k,l grids, random intensities):
n = 3 is the three basis vectors, n = 343 all h,k,l in [-3, 3]. One epoch = one pass of
mini-batch training over --samples clouds plus the validation pass (15 % as many), as
timed between consecutive `ctx.report` calls of the shared loop.

    python perf/neural_epoch.py                      # all models, n = 3 and 343
    python perf/neural_epoch.py --models pointnet --n 343 --threads 2
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from harness.api import FitContext
from harness_plugins.models.neural import MODELS
from harness_plugins.models.neural import loop
from harness_plugins.models.neural.base import seeded, threads
from harness_plugins.models.neural.data import batches, to_data


def clouds(n_samples: int, n_points: int, rng: np.random.Generator) -> list[np.ndarray]:
    r = {3: None, 27: 1, 125: 2, 343: 3}[n_points]
    hkl = np.eye(3) if r is None else np.stack(np.meshgrid(*[np.arange(-r, r + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    out = []
    for _ in range(n_samples):
        basis = rng.uniform(0.2, 0.6, (3, 3)) + np.diag(rng.uniform(0.3, 0.6, 3))
        points = hkl @ basis
        out.append(np.hstack([points, rng.uniform(0, 1, (len(points), 1))]).astype(np.float32))
    return out


def time_model(cls, n_points: int, n_samples: int, epochs: int, device: str) -> dict[str, float]:
    rng = np.random.default_rng(0)
    n_valid = max(2, int(0.15 * n_samples))
    X, Xv = clouds(n_samples, n_points, rng), clouds(n_valid, n_points, rng)
    y, yv = rng.integers(0, 2, n_samples), rng.integers(0, 2, n_valid)
    model = cls()
    params = model.default_params()
    stamps: list[float] = []
    ctx = FitContext(device, 0, 2, lambda t, p: float((p.argmax(1) == t).mean()),
                     report=lambda step, value: stamps.append(time.perf_counter()))
    with seeded(0, device):
        t0 = time.perf_counter()
        train, valid = to_data(X, y, device), to_data(Xv, None, device)
        t_data = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in batches(train, model.batch_size, torch.Generator().manual_seed(0)):
            pass
        t_collate = time.perf_counter() - t0
        net = model.build(params, 4, 2).to(device)
        opt = loop.make_optimizer(net, params["optimizer"], params["lr"])
        start = time.perf_counter()
        loop.train(net, train, valid, yv, opt, ctx, max_epochs=epochs, patience=epochs,
                   batch_size=model.batch_size, generator=torch.Generator().manual_seed(0))
    epoch_times = np.diff([start, *stamps])
    return {"epoch_s": float(np.median(epoch_times)), "first_epoch_s": float(epoch_times[0]),
            "to_data_s": t_data, "collate_s": t_collate,
            "params": sum(p.numel() for p in net.parameters())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=[m.name for m in MODELS])
    ap.add_argument("--n", nargs="*", type=int, default=[3, 343], choices=[3, 27, 125, 343])
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    by_name = {m.name: m for m in MODELS}
    print(f"torch {torch.__version__}, {args.threads} thread(s), device {args.device}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores, {args.samples} samples")
    print(f"{'model':15} {'n':>4} {'epoch s':>8} {'1st s':>7} {'to_data s':>9} {'collate s':>9} {'params':>9}")
    with threads(args.threads):
        for name in args.models:
            for n in args.n:
                r = time_model(by_name[name], n, args.samples, args.epochs, args.device)
                print(f"{name:15} {n:4d} {r['epoch_s']:8.2f} {r['first_epoch_s']:7.2f} "
                      f"{r['to_data_s']:9.2f} {r['collate_s']:9.3f} {r['params']:9d}", flush=True)


if __name__ == "__main__":
    main()
