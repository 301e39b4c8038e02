"""Aggregating study results over seeds into leaderboards: rich tables, Markdown, CSV, JSON.

Each row carries its mean ± std over seeds, a 95 % interval and how it compares with the
best row of its table (`harness.report.stats` says which interval and test, and why).
The files hold no wall times, so two identical runs write identical bytes; times go to
`timings.csv`.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from rich.console import Console
from rich.table import Table

from harness import evaluation
from harness.report import stats
from harness.report.tables import by_task
from harness.store import UnitResult

KEY = ("dataset", "task", "representation", "perturbation", "model")
TIMING_FIELDS = ("fit_seconds",)
STATS_VERSION = 1  # bump when an interval or test changes: remembered ones are dropped  # kept out of the leaderboard files: they differ between runs
LEGEND = (
    "95 % CI: percentile bootstrap over test materials, resampled within each seed's test set "
    "and class, metric averaged over seeds (t-interval over seeds where no predictions are stored). "
    "vs best: paired bootstrap on the same test materials of the best row; "
    "≈ marks rows not distinguishable from the best (95 % interval of the difference contains 0)."
)


def latest(results: Iterable[UnitResult]) -> list[UnitResult]:
    """One result per study: results come ordered by finish time, later ones win."""
    out: dict[str, UnitResult] = {}
    for r in results:
        out[r.unit] = r
    return list(out.values())


def groups(results: Iterable[UnitResult]) -> dict[tuple, list[UnitResult]]:
    """The studies of each leaderboard row (one per seed), seeds in order. A study scored
    on extra test sets (held-out families, evaluate datasets) also counts in their rows."""
    out: dict[tuple, list[UnitResult]] = defaultdict(list)
    for r in latest(evaluation.expand(results)):
        out[tuple(getattr(r, k) for k in KEY)].append(r)
    return {k: sorted(v, key=lambda r: r.seed) for k, v in out.items()}


def _direction(metric: str) -> int:
    """+1 where higher is better (the usual), -1 for a loss: best first either way."""
    from harness import metrics

    try:
        return 1 if metrics.get(metric).higher_is_better else -1
    except KeyError:  # a plugin's metric whose plugin is not loaded: assume a score
        return 1


def build(results: Iterable[UnitResult]) -> list[dict[str, Any]]:
    """One row per combination, best first within each task, with intervals and the
    comparison with the best row."""
    grouped = groups(results)
    rows = [_row(key, rs) for key, rs in grouped.items()]
    rows.sort(key=lambda r: (r["dataset"], r["task"], -_direction(r["metric"]) * r["mean"],
                             r["representation"], r["perturbation"], r["model"]))
    for table in _tables(rows).values():
        _compare_with_best(table, grouped)
    return rows


def _row(key: tuple, rs: list[UnitResult]) -> dict[str, Any]:
    values = np.array([r.value for r in rs])
    row: dict[str, Any] = dict(zip(KEY, key))
    row.update(
        metric=rs[0].metric,
        mean=float(values.mean()),
        std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
    )
    interval = _interval(row, rs)
    row.update(
        ci_low=interval.low if interval else None,
        ci_high=interval.high if interval else None,
        ci_method=interval.method if interval else "",
        vs_best="", p_vs_best=None, diff_low=None, diff_high=None,
        n_seeds=len(rs),
        seeds=[r.seed for r in rs],
        n_test=int(round(np.mean([r.n_test for r in rs]))),
        n_train=int(round(np.mean([r.n_train for r in rs]))),
        device=",".join(sorted({r.device for r in rs})),
        fit_seconds=float(np.mean([r.fit_seconds for r in rs])),
    )
    for name in sorted({n for r in rs for n in r.extra}):
        vals = np.array([r.extra[name] for r in rs if name in r.extra])
        row[f"{name}_mean"] = float(vals.mean())
        row[f"{name}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return row


def _has_predictions(rs: list[UnitResult]) -> bool:
    return all(r.predictions for r in rs)


def _predictions(rs: list[UnitResult]) -> list[stats.Predictions]:
    return [stats.Predictions.from_stored(r.predictions) for r in rs]


def _identity(rs: list[UnitResult]) -> list[str]:
    return [f"{r.key or r.unit}@{r.finished!r}" for r in rs]


def _remembered(parts: list[Any], compute):
    """A bootstrap (seconds on a 5,000-crystal test set) is computed once per set of
    finished studies and kept in the cache; reading it back gives the same bytes."""
    from harness.paths import cache_dir

    blob = json.dumps([STATS_VERSION, stats.N_BOOT, *parts], sort_keys=True, default=str)
    path = cache_dir(writable=False) / "leaderboard-stats" / f"{hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()}.json"
    if path.exists():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    value = compute()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(path)
    except OSError:  # a read-only cache costs time, never results
        pass
    return value


def _interval(row: dict[str, Any], rs: list[UnitResult]) -> stats.Interval | None:
    if _has_predictions(rs):
        def compute():
            iv = stats.bootstrap_interval(row["metric"], _predictions(rs), stats.stable_rng(*(row[k] for k in KEY)))
            return [iv.low, iv.high]

        low, high = _remembered(["interval", row["metric"], *(row[k] for k in KEY), _identity(rs)], compute)
        return stats.Interval(low, high, "bootstrap")
    return stats.t_interval([r.value for r in rs])


def _compare_with_best(table: list[dict[str, Any]], grouped: dict[tuple, list[UnitResult]]) -> None:
    best = table[0]
    best["vs_best"] = "best"
    best_rs = {r.seed: r for r in grouped[tuple(best[k] for k in KEY)]}
    for row in table[1:]:
        rs = [r for r in grouped[tuple(row[k] for k in KEY)] if r.seed in best_rs]
        mine = [best_rs[r.seed] for r in rs]
        cmp = None
        if rs and _has_predictions(rs) and _has_predictions(mine):
            def compute(mine=mine, rs=rs, row=row):
                rng = stats.stable_rng(*(best[k] for k in KEY), *(row[k] for k in KEY))
                c = stats.paired_bootstrap(row["metric"], _predictions(mine), _predictions(rs), rng)
                return None if c is None else [c.low, c.high, c.p]

            parts = ["paired", row["metric"], *(best[k] for k in KEY), *(row[k] for k in KEY),
                     _identity(mine), _identity(rs)]
            found = _remembered(parts, compute)
            cmp = None if found is None else stats.Comparison(*found, "paired bootstrap")
        if cmp is None:
            cmp = stats.paired_t([r.value for r in mine], [r.value for r in rs])
        if cmp is None:
            row["vs_best"] = "untested"  # a single seed without predictions
            continue
        row.update(vs_best="worse" if cmp.distinguishable else "tied", p_vs_best=cmp.p,
                   diff_low=cmp.low, diff_high=cmp.high)


def _tables(rows: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    out: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[(r["dataset"], r["task"])].append(r)
    return out


def extras(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({k[: -len("_mean")] for r in rows for k in r if k.endswith("_mean") and k != "mean"})


# ----------------------------------------------------------------- cells shared by the formats


def fmt_mean(row: dict[str, Any], name: str = "") -> str:
    prefix = f"{name}_" if name else ""
    return f"{row[f'{prefix}mean']:.3f} ± {row[f'{prefix}std']:.3f}"


def fmt_interval(row: dict[str, Any]) -> str:
    if row["ci_low"] is None:
        return "n/a"
    return f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]" + (" (t)" if row["ci_method"] == "t" else "")


def fmt_vs_best(row: dict[str, Any]) -> str:
    if row["vs_best"] in ("best", "untested", ""):
        return row["vs_best"]
    mark = "≈ " if row["vs_best"] == "tied" else ""
    p = row["p_vs_best"]
    return f"{mark}p<0.001" if p < 0.001 else f"{mark}p={p:.3f}"


def headers(rows: list[dict[str, Any]]) -> list[str]:
    metric = rows[0]["metric"]
    return ["#", "representation", "perturbation", "model", metric, "95% CI", "vs best",
            *extras(rows), "seeds", "n_test"]


def cells(i: int, row: dict[str, Any], extra_metrics: list[str]) -> list[str]:
    return [str(i), row["representation"], row["perturbation"], row["model"], fmt_mean(row),
            fmt_interval(row), fmt_vs_best(row), *(fmt_mean(row, n) for n in extra_metrics),
            str(row["n_seeds"]), str(row["n_test"])]


def title(task: str, rows: list[dict[str, Any]]) -> str:
    return f"{task}: test {rows[0]['metric']} (mean ± std over seeds, 95 % CI), best first"


def render(rows: list[dict[str, Any]], console: Console) -> None:
    if not rows:
        console.print("[yellow]no results yet")
        return
    if console.width < 110:  # e.g. an 80-column terminal: stacked cells, nothing cut
        from harness import narrow

        return narrow.render(rows, console)
    for task, task_rows in by_task(rows).items():
        names = extras(task_rows)
        table = Table(title=title(task, task_rows), title_justify="left")
        for j, col in enumerate(headers(task_rows)):
            table.add_column(col, justify="left" if j in (1, 2, 3) else "right",
                             style="dim" if j == 0 else ("bold" if j == 4 else None))
        for i, r in enumerate(task_rows, 1):
            table.add_row(*cells(i, r, names), style="bold green" if r["vs_best"] in ("best", "tied") else None)
        console.print(table)
    console.print(f"[dim]{LEGEND}", highlight=False)


def markdown(rows: list[dict[str, Any]]) -> str:
    parts = []
    for task, task_rows in by_task(rows).items():
        names = extras(task_rows)
        head = headers(task_rows)
        parts.append(f"## {task}\n\nTest {task_rows[0]['metric']}, mean ± std over seeds, best first.\n")
        parts.append("| " + " | ".join(head) + " |")
        parts.append("|" + "|".join("---" if i in (1, 2, 3) else "---:" for i in range(len(head))) + "|")
        for i, r in enumerate(task_rows, 1):
            parts.append("| " + " | ".join(cells(i, r, names)) + " |")
        parts.append("")
    if rows:
        parts.append(LEGEND + "\n")
    return "\n".join(parts)


def public(row: dict[str, Any]) -> dict[str, Any]:
    """The row as the leaderboard files hold it: no wall times."""
    return {k: v for k, v in row.items() if k not in TIMING_FIELDS}


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return " ".join(map(str, value))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def to_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    fields = list(dict.fromkeys(k for r in rows for k in public(r)))
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _cell(v) for k, v in public(r).items()})
    return buf.getvalue()


def _json_safe(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def to_json(rows: list[dict[str, Any]]) -> str:
    return json.dumps([{k: _json_safe(v) for k, v in public(r).items()} for r in rows], indent=2, ensure_ascii=False)


def timings_csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*KEY, "n_seeds", "device", "fit_seconds_mean"])
    for r in rows:
        writer.writerow([*(r[k] for k in KEY), r["n_seeds"], r["device"], f"{r['fit_seconds']:.3f}"])
    return buf.getvalue()


def write(rows: list[dict[str, Any]], results_dir: Path) -> None:
    results_dir = Path(results_dir)
    (results_dir / "leaderboard.md").write_text(markdown(rows), encoding="utf-8")
    (results_dir / "leaderboard.csv").write_text(to_csv(rows), encoding="utf-8")
    (results_dir / "leaderboard.json").write_text(to_json(rows), encoding="utf-8")
    (results_dir / "timings.csv").write_text(timings_csv(rows), encoding="utf-8")
    plot(rows, results_dir / "leaderboard.png")


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """A bar chart per task: mean with its 95 % interval, rows tied with the best in green."""
    if not rows:
        return
    from harness.report.figures import leaderboard_figure, save

    save(leaderboard_figure(rows), path)
