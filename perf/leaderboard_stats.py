"""Cost of the leaderboard's bootstrap: the vectorised weighted metrics against calling
`harness.sdk.metrics` (scikit-learn) once per replicate, on the same synthetic predictions.

A test set the size of the full metallicity file's (5,511 crystals), three seeds, 1,000
replicates. The reference runs fewer replicates and is scaled up (it is linear in them).

    python perf/leaderboard_stats.py [--n-test 5511] [--reference-replicates 100]
"""

from __future__ import annotations

import argparse
import resource
import time

import numpy as np

from harness.sdk import metrics
from harness.report import stats


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n-test", type=int, default=5511)
    parser.add_argument("--reference-replicates", type=int, default=100)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    seeds = []
    for _ in range(3):
        y = rng.integers(0, 2, args.n_test)
        p = 1 / (1 + np.exp(-(1.5 * y + rng.normal(0, 1, args.n_test))))
        seeds.append(stats.Predictions([str(i) for i in range(args.n_test)], y, np.column_stack([1 - p, p])))
    print(f"{args.n_test} test crystals x 3 seeds, {stats.N_BOOT} replicates")
    for metric in ("roc_auc", "accuracy", "macro_f1"):
        t0 = time.perf_counter()
        stats.bootstrap_interval(metric, seeds, np.random.default_rng(1))
        fast = time.perf_counter() - t0
        counts = [stats.stratified_counts(p.y, args.reference_replicates, np.random.default_rng(1)) for p in seeds]
        t0 = time.perf_counter()
        for p, c in zip(seeds, counts):
            for row in c:
                index = np.repeat(np.arange(len(row)), row)
                metrics.get(metric)(p.y[index], p.proba[index])
        reference = (time.perf_counter() - t0) * stats.N_BOOT / args.reference_replicates
        print(
            f"  {metric:9s} interval: {fast:6.2f} s vectorised, {reference:6.2f} s per-replicate reference "
            f"({reference / fast:5.1f}x)"
        )
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
