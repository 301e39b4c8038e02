"""Aggregating unit results over seeds into leaderboards: rich tables, Markdown, CSV, JSON."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from rich.console import Console
from rich.table import Table

from harness.store import UnitResult

KEY = ("dataset", "task", "representation", "perturbation", "model")


def build(results: Iterable[UnitResult]) -> list[dict[str, Any]]:
    """One row per combination: mean and std over seeds, best first within each task."""
    latest: dict[str, UnitResult] = {}
    for r in results:  # ordered by finish time: later results of a unit win
        latest[r.unit] = r
    groups: dict[tuple, list[UnitResult]] = defaultdict(list)
    for r in latest.values():
        groups[tuple(getattr(r, k) for k in KEY)].append(r)
    rows = []
    for key, rs in groups.items():
        values = np.array([r.value for r in rs])
        row: dict[str, Any] = dict(zip(KEY, key))
        row.update(
            metric=rs[0].metric,
            mean=float(values.mean()),
            std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
            n_seeds=len(rs),
            seeds=sorted(r.seed for r in rs),
            n_test=int(round(np.mean([r.n_test for r in rs]))),
            n_train=int(round(np.mean([r.n_train for r in rs]))),
            fit_seconds=float(np.mean([r.fit_seconds for r in rs])),
            device=",".join(sorted({r.device for r in rs})),
        )
        for name in sorted({n for r in rs for n in r.extra}):
            vals = np.array([r.extra[name] for r in rs if name in r.extra])
            row[f"{name}_mean"] = float(vals.mean())
            row[f"{name}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
        rows.append(row)
    rows.sort(key=lambda r: (r["dataset"], r["task"], -r["mean"], r["representation"], r["perturbation"], r["model"]))
    return rows


def _extras(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({k[: -len("_mean")] for r in rows for k in r if k.endswith("_mean") and k != "mean"})


def by_task(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """One table per task (per task and dataset when a config compares several)."""
    several = len({r["dataset"] for r in rows}) > 1
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[f"{r['task']} on {r['dataset']}" if several else r["task"]].append(r)
    return out


def render(rows: list[dict[str, Any]], console: Console) -> None:
    if not rows:
        console.print("[yellow]no results yet")
        return
    for task, task_rows in by_task(rows).items():
        metric = task_rows[0]["metric"]
        extras = _extras(task_rows)
        table = Table(title=f"{task}: test {metric} (mean ± std over seeds), best first", title_justify="left")
        table.add_column("#", justify="right", style="dim")
        for col in ("representation", "perturbation", "model"):
            table.add_column(col)
        table.add_column(metric, justify="right", style="bold")
        for name in extras:
            table.add_column(name, justify="right")
        table.add_column("seeds", justify="right")
        table.add_column("n_test", justify="right")
        table.add_column("fit s", justify="right")
        for i, r in enumerate(task_rows, 1):
            table.add_row(
                str(i), r["representation"], r["perturbation"], r["model"],
                f"{r['mean']:.3f} ± {r['std']:.3f}",
                *(f"{r[f'{n}_mean']:.3f} ± {r[f'{n}_std']:.3f}" for n in extras),
                str(r["n_seeds"]), str(r["n_test"]), f"{r['fit_seconds']:.2f}",
            )
        console.print(table)


def markdown(rows: list[dict[str, Any]]) -> str:
    parts = []
    for task, task_rows in by_task(rows).items():
        metric = task_rows[0]["metric"]
        extras = _extras(task_rows)
        head = ["#", "representation", "perturbation", "model", metric, *extras, "seeds", "n_test", "fit s"]
        parts.append(f"## {task}\n\nTest {metric}, mean ± std over seeds, best first.\n")
        parts.append("| " + " | ".join(head) + " |")
        parts.append("|" + "|".join("---" if i in (1, 2, 3) else "---:" for i in range(len(head))) + "|")
        for i, r in enumerate(task_rows, 1):
            cells = [str(i), r["representation"], r["perturbation"], r["model"], f"{r['mean']:.3f} ± {r['std']:.3f}"]
            cells += [f"{r[f'{n}_mean']:.3f} ± {r[f'{n}_std']:.3f}" for n in extras]
            cells += [str(r["n_seeds"]), str(r["n_test"]), f"{r['fit_seconds']:.2f}"]
            parts.append("| " + " | ".join(cells) + " |")
        parts.append("")
    return "\n".join(parts)


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=fields)
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (" ".join(map(str, v)) if isinstance(v, list) else v) for k, v in r.items()})
    return buf.getvalue()


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, indent=2)


def write(rows: list[dict[str, Any]], results_dir: Path) -> None:
    results_dir = Path(results_dir)
    (results_dir / "leaderboard.md").write_text(markdown(rows))
    (results_dir / "leaderboard.csv").write_text(to_csv(rows))
    (results_dir / "leaderboard.json").write_text(to_json(rows))
    plot(rows, results_dir / "leaderboard.png")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """A bar chart per task (mean ± std): where a person would rather look than read."""
    if not rows:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = by_task(rows)
    fig, axes = plt.subplots(len(tasks), 1, figsize=(9, 0.35 * len(rows) + 1.5 * len(tasks)), squeeze=False)
    for ax, (task, task_rows) in zip(axes[:, 0], tasks.items()):
        labels = [f"{r['representation']} / {r['perturbation']} / {r['model']}" for r in task_rows][::-1]
        means = [r["mean"] for r in task_rows][::-1]
        stds = [r["std"] for r in task_rows][::-1]
        ax.barh(labels, means, xerr=stds, color="tab:blue", alpha=0.8, capsize=3)
        ax.set_title(f"{task} (test {task_rows[0]['metric']})", loc="left", fontsize=10)
        ax.set_xlim(0, 1)
        ax.tick_params(axis="y", labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
