"""Learning curves: test score against training-set size, one line per combination,
with a 95 % t-interval over seeds (a point with one seed shows no bar).

Drawn from stored results only: a study's fraction is in its identity
(`train_fraction`, absent for the whole training split; `harness.prepare.fractions`)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from harness.services.records import AXES, UnitResult


def points(results: Iterable[UnitResult]) -> dict[tuple[str, str], dict[str, list[dict[str, Any]]]]:
    """(dataset, task) -> combination -> points sorted by fraction: fraction, mean n_train,
    mean, interval, seeds. Only tables that have some fraction below 1."""
    raw: dict[tuple[str, str], dict[str, dict[float, list[UnitResult]]]] = defaultdict(lambda: defaultdict(dict))
    curved: set[tuple[str, str]] = set()
    for r in results:
        dataset, share = r.curve_dataset, r.train_fraction
        if share < 1:
            curved.add((dataset, r.task))
        combo = " / ".join(getattr(r, axis) for axis in AXES[2:])
        raw[(dataset, r.task)][combo].setdefault(share, []).append(r)
    out: dict[tuple[str, str], dict[str, list[dict[str, Any]]]] = {}
    for table in sorted(curved):
        out[table] = {
            combo: [_point(share, rs) for share, rs in sorted(by_share.items())]
            for combo, by_share in sorted(raw[table].items())
        }
    return out


def _point(share: float, rs: list[UnitResult]) -> dict[str, Any]:
    from scipy import stats

    values = np.array([r.value for r in rs], dtype=float)
    mean = float(values.mean())
    half = 0.0
    if len(values) > 1:
        half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return {
        "fraction": share,
        "n_train": float(np.mean([r.n_train for r in rs])),
        "mean": mean,
        "low": mean - half,
        "high": mean + half,
        "seeds": len(values),
        "metric": rs[0].metric,
    }


def figure(curves: dict[str, list[dict[str, Any]]], title: str):
    from harness.report.figures import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for combo, pts in curves.items():
        x = np.array([p["n_train"] for p in pts])
        y = np.array([p["mean"] for p in pts])
        err = np.vstack([y - [p["low"] for p in pts], [p["high"] for p in pts] - y])
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=combo)
    metric = next(iter(curves.values()))[0]["metric"]
    ax.set_xscale("log")
    from matplotlib.ticker import NullFormatter

    ax.xaxis.set_minor_formatter(NullFormatter())  # decades only: minor labels overlap
    ax.set_xlabel("training materials")
    ax.set_ylabel(f"test {metric} (mean, 95 % t-interval over seeds)")
    ax.set_title(title, loc="left", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def write(results: Iterable[UnitResult], results_dir: Path) -> list[Path]:
    """learning_curve-<dataset>-<task>.png and learning_curves.csv in the results folder
    for each table with fractions; nothing when the run has none."""
    from harness.report.figures import save

    tables = points(results)
    written = []
    lines = ["dataset,task,combination,fraction,n_train,mean,ci_low,ci_high,seeds"]
    for (dataset, task), curves in tables.items():
        slug = "".join(c if c.isalnum() or c in "-_." else "_" for c in f"{dataset}-{task}")
        written.append(
            save(figure(curves, f"{dataset} · {task}: learning curve"), results_dir / f"learning_curve-{slug}.png")
        )
        for combo, pts in curves.items():
            lines += [
                f'{dataset},{task},"{combo}",{p["fraction"]:g},{p["n_train"]:.0f},{p["mean"]:.4f},'
                f"{p['low']:.4f},{p['high']:.4f},{p['seeds']}"
                for p in pts
            ]
    if tables:
        (results_dir / "learning_curves.csv").write_text("\n".join(lines) + "\n")
        written.append(results_dir / "learning_curves.csv")
    return written
