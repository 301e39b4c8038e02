"""What deciding "done" costs as the store grows: `Store.done_keys()` over N stored studies,
each with the test predictions of a 5,500-material test set and 7 classes (the size of the
paper's crystal-system studies). CPU seconds of the first call (a store written by this
checkout) and of a second one.

    python perf/store_plan.py --studies 200
    /path/to/other/.venv/bin/python perf/store_plan.py   # another checkout's store code
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from harness.services.store import Store, UnitResult


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--studies", type=int, default=200)
    ap.add_argument("--test", type=int, default=5500)
    ap.add_argument("--classes", type=int, default=7)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/results.sqlite")
        for i in range(args.studies):
            p = rng.dirichlet(np.ones(args.classes), size=args.test)
            store.add(
                UnitResult(
                    unit=f"d:t/r/p/m#{i}",
                    key=f"{i:064d}",
                    dataset="d",
                    task="t",
                    representation="r",
                    perturbation="p",
                    model="m",
                    seed=i,
                    metric="roc_auc",
                    value=0.5,
                    predictions={
                        "ids": [f"mp-{j}" for j in range(args.test)],
                        "y": rng.integers(0, args.classes, args.test).tolist(),
                        "proba": p.tolist(),
                    },
                )
            )
        timings = []
        for _ in range(2):
            reopened = Store(f"sqlite:///{tmp}/results.sqlite")
            t0 = time.process_time()
            done = reopened.done_keys()
            timings.append(time.process_time() - t0)
            assert len(done) == args.studies
    print(
        f"done_keys over {args.studies} studies ({args.test} x {args.classes} test probabilities each): "
        f"{timings[0]:.2f} CPU s, again {timings[1]:.2f} CPU s"
    )


if __name__ == "__main__":
    main()
