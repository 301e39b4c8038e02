"""Aggregating study results over seeds into leaderboards: rich tables, Markdown, CSV, JSON.

Each row carries its mean ± std over seeds, a 95 % interval and how it compares with the
best row of its table (`harness.report.stats` says which interval and test, and why).
The files hold no wall times, so two identical runs write identical bytes; times go to
`timings.csv`.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

import numpy as np
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from harness.report import evaluation
from harness.report import stats
from harness.report.tables import by_task
from harness.services.records import AXES, ROW_AXES as COLUMNS, TABLE_AXES as TABLE, UnitResult

KEY = AXES  # a row per entry of every axis (kept under its old name for callers)
TIMING_FIELDS = ("fit_seconds",)
STATS_VERSION = 2  # bump when an interval or test changes: remembered ones are dropped
LEGEND = (
    "mean ± std over seeds (no ± with one seed). 95 % CI: Student t over the seed values (seeds - 1 df): "
    "each seed has its own split and test set, so it carries seed variance (split, initialisation, "
    "tuning) and test sampling; where all seeds share one test set, that set's bootstrap variance is "
    "added. One seed: bootstrap over test materials, marked 'test sampling only'. vs best: paired per "
    "seed on the shared splits (same construction on the per-seed differences); p Holm-adjusted over the rows "
    "compared with the best of each table (family-wise error 5 %); ≈ marks rows not "
    "distinguishable from the best."
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
        out[r.row_key].append(r)
    return {k: sorted(v, key=lambda r: r.seed) for k, v in out.items()}


def _direction(metric: str, rs: Iterable[UnitResult] = ()) -> int:
    """+1 where higher is better (the usual), -1 for a loss: best first either way. The
    direction written into the result at study time wins (so a plugin's loss ranks right
    where the plugin is not loaded); older results fall back to the loaded metrics."""
    from harness.sdk import metrics

    for r in rs:
        known = r.higher_is_better(metric)
        if known is not None:
            return 1 if known else -1
    try:
        return 1 if metrics.get(metric).higher_is_better else -1
    except KeyError:  # a plugin's metric whose plugin is not loaded: assume a score
        return 1


def build(results: Iterable[UnitResult], metric: str | None = None) -> list[dict[str, Any]]:
    """One row per combination, best first within each task, with intervals and the
    comparison with the best row. `metric`: rank by this metric instead of the task's,
    computed from the stored predictions (or read from the stored extra metrics)."""
    grouped = groups(results)
    if metric:
        grouped = rescored(grouped, metric)
    memo = _Memo()
    rows = [_row(key, rs, memo) for key, rs in grouped.items()]
    rows.sort(key=lambda r: (*(r[a] for a in TABLE), -r["direction"] * r["mean"], *(r[a] for a in COLUMNS)))
    for table in _tables(rows).values():
        _compare_with_best(table, grouped, memo)
    for r in rows:
        r["higher_is_better"] = r.pop("direction") > 0
    return rows


def rescored(grouped: dict[tuple, list[UnitResult]], metric: str) -> dict[tuple, list[UnitResult]]:
    """Each row's studies scored by `metric`: the stored value where the study computed it,
    else from its stored predictions (existing results need no rerun). Rows where the
    metric cannot be had (no predictions, a binary metric on a multiclass task) are left
    out; no row at all is a user error naming the metrics there are."""
    from harness.sdk import metrics
    from harness.services.errors import UserError

    out: dict[tuple, list[UnitResult]] = {}
    for key, rs in grouped.items():
        new = []
        for r in rs:
            if r.metric == metric:
                new.append(r)
                continue
            if metric in r.extra:
                value = float(r.extra[metric])
            elif r.predictions:
                try:
                    p = stats.Predictions.from_stored(r.predictions)
                    value = float(metrics.get(metric)(p.y, p.proba))
                except (KeyError, ValueError):
                    break
            else:
                break
            extra = {k: v for k, v in r.extra.items() if k != metric}
            extra[r.metric] = r.value
            new.append(dataclasses.replace(r, metric=metric, value=value, extra=extra))
        else:
            out[key] = new
    if out and len(out) < len(grouped):
        import logging

        logging.getLogger("harness").warning(
            "%d of %d leaderboard rows cannot be scored by %s (no stored predictions, or a metric their task "
            "does not define) and are left out",
            len(grouped) - len(out),
            len(grouped),
            metric,
        )
    if not out and grouped:
        names = sorted(
            {m.name for m in metrics.BUILTIN}
            | {r.metric for rs in grouped.values() for r in rs}
            | {n for rs in grouped.values() for r in rs for n in r.extra}
        )
        raise UserError(f"no result can be scored by metric {metric!r}; choose one of: {', '.join(names)}")
    return out


def _row(key: tuple, rs: list[UnitResult], memo: _Memo) -> dict[str, Any]:
    values = np.array([r.value for r in rs])
    row: dict[str, Any] = dict(zip(KEY, key))
    row.update(
        metric=rs[0].metric,
        direction=_direction(rs[0].metric, rs),
        mean=float(values.mean()),
        std=float(values.std(ddof=1)) if len(values) > 1 else None,
    )
    seeds = memo.seed_stats(rs[0].metric, rs)
    shared = memo.shared_var(rs[0].metric, [(1.0, rs)]) if seeds is not None else None
    interval = _within_range(stats.row_interval(values, seeds, shared), rs[0].metric)
    row.update(
        ci_low=interval.low if interval else None,
        ci_high=interval.high if interval else None,
        ci_method=interval.method if interval else "",
        vs_best="",
        p_vs_best=None,
        p_vs_best_raw=None,
        diff_low=None,
        diff_high=None,
        vs_best_method="",
        test_sampling_sd=None if seeds is None else float(np.sqrt(np.mean([x.within_var for x in seeds]))),
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
        row[f"{name}_std"] = float(vals.std(ddof=1)) if len(vals) > 1 else None
    return row


def _within_range(iv: stats.Interval | None, metric: str) -> stats.Interval | None:
    """The interval cut to the values the metric can take (an AUC above 1 is no bound)."""
    from harness.sdk import metrics

    if iv is None or metric not in metrics.RANGES:
        return iv
    lo, hi = metrics.RANGES[metric]
    return stats.Interval(min(max(iv.low, lo), hi), max(min(iv.high, hi), lo), iv.method)


def _has_predictions(rs: list[UnitResult]) -> bool:
    return all(r.predictions for r in rs)


class _Memo:
    """Per-seed statistics, cached on disk by the content of the predictions (and the
    metric, the statistics version and the number of draws) through the checksummed cache:
    a run recomputes only rows whose predictions changed, and a damaged or tampered file is
    recomputed, never read."""

    def __init__(self) -> None:
        self._digest: dict[int, str] = {}
        self._preds: dict[str, stats.Predictions] = {}
        self._seen: dict[tuple, Any] = {}

    def digest(self, r: UnitResult) -> str:
        found = self._digest.get(id(r.predictions))
        if found is None:
            p = stats.Predictions.from_stored(r.predictions)
            h = hashlib.blake2b(digest_size=16)
            h.update("\n".join(p.ids).encode())
            h.update(np.ascontiguousarray(p.y, dtype=np.int64).tobytes())
            h.update(str(p.proba.shape).encode())
            h.update(np.ascontiguousarray(p.proba, dtype=np.float64).tobytes())
            found = self._digest[id(r.predictions)] = h.hexdigest()
            self._preds[found] = p
        return found

    def _cached(self, parts: list[Any], compute, valid) -> Any:
        from harness.services import cache
        from harness.services.errors import UserError
        from harness.services.paths import cache_dir

        blob = json.dumps([STATS_VERSION, stats.N_BOOT, *parts], sort_keys=True)
        key = blob
        if key in self._seen:
            return self._seen[key]
        path = (
            cache_dir(writable=False)
            / "leaderboard-stats"
            / f"{hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()}.json"
        )
        value = cache.read_json(path)
        if not valid(value):
            value = compute()
            if value is None:  # nothing worth keeping (no common split): cheap to find again
                self._seen[key] = value
                return value
            try:
                cache.write_json(path, value)
            except UserError:  # a read-only or full cache costs time, never results
                pass
        self._seen[key] = value
        return value

    def seed_stats(self, metric: str, rs: list[UnitResult]) -> list[stats.SeedStats] | None:
        """Each seed's test-sampling statistics; None where predictions are missing or the
        metric cannot be computed here (a plugin's metric whose plugin is not loaded)."""
        from harness.sdk import metrics

        if not _has_predictions(rs):
            return None
        try:
            metrics.get(metric)
        except KeyError:
            return None
        out = []
        for r in rs:
            d = self.digest(r)

            def compute(d=d):
                s = stats.seed_stats(metric, self._preds[d], stats.stable_rng(metric, d))
                return [s.value, s.within_var, s.low, s.high]

            got = self._cached(["seed", metric, d], compute, _valid_seed)
            out.append(stats.SeedStats(*got))
        return out

    def shared_var(self, metric: str, rows: list[tuple[float, list[UnitResult]]]) -> float | None:
        """Where every seed of the rows was scored on the same materials: the variance of
        the (signed) seed means with those redrawn once for all; None otherwise."""
        if any(len(rs) < 2 for _, rs in rows):
            return None
        digests = [[self.digest(r) for r in rs] for _, rs in rows]
        preds = [self._preds[d] for ds in digests for d in ds]
        if not stats.shared_test_set(preds):
            return None
        weights = [w for w, _ in rows]

        def compute():
            rng = stats.stable_rng(metric, *weights, *(d for ds in digests for d in ds))
            return [
                stats.shared_variance(
                    metric, [(w, [self._preds[d] for d in ds]) for w, ds in zip(weights, digests)], rng
                )
            ]

        got = self._cached(["shared", metric, weights, digests], compute, lambda v: _finite(v, 1) and v[0] >= 0)
        return got[0]

    def seed_diff(self, metric: str, best: UnitResult, other: UnitResult) -> stats.SeedDiff | None:
        a, b = self.digest(best), self.digest(other)

        def compute():
            got = stats.seed_diff(metric, self._preds[a], self._preds[b], stats.stable_rng(metric, a, b))
            return None if got is None else [got.diff, got.within_var, got.low, got.high, got.p]

        got = self._cached(["pair", metric, a, b], compute, _valid_pair)
        return None if got is None else stats.SeedDiff(*got)


def _finite(value: Any, n: int) -> bool:
    return (
        isinstance(value, list)
        and len(value) == n
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
    )


def _valid_seed(value: Any) -> bool:
    return _finite(value, 4) and value[1] >= 0 and value[2] <= value[3]


def _valid_pair(value: Any) -> bool:
    # None is never stored as a value (read_json gives None for a missing file): a pair
    # that is not on one split is cheap to find again
    return _finite(value, 5) and value[1] >= 0 and value[2] <= value[3] and 0 <= value[4] <= 1


def compare(
    best_rs: list[UnitResult], other_rs: list[UnitResult], metric: str, memo: _Memo | None = None
) -> stats.Comparison | None:
    """`best` minus `other` over their shared seeds, paired per seed (stats docstring)."""
    from harness.sdk import metrics

    memo = memo or _Memo()
    by_seed = {r.seed: r for r in best_rs}
    mine = [r for r in other_rs if r.seed in by_seed]
    theirs = [by_seed[r.seed] for r in mine]
    if not mine:
        return None
    diffs: list[stats.SeedDiff | None] = []
    try:
        computable = _has_predictions(mine) and _has_predictions(theirs) and metrics.get(metric) is not None
    except KeyError:
        computable = False
    if computable:
        diffs = [memo.seed_diff(metric, b, o) for b, o in zip(theirs, mine)]
    if diffs and all(d is not None for d in diffs):
        shared = memo.shared_var(metric, [(1.0, theirs), (-1.0, mine)])
        if shared is not None:
            shared = stats.common_part(shared, [d.within_var for d in diffs])
        return stats.compare_seeds([d.diff for d in diffs], shared, single=diffs[0])
    return stats.compare_seeds([b.value - o.value for b, o in zip(theirs, mine)])


def _compare_with_best(table: list[dict[str, Any]], grouped: dict[tuple, list[UnitResult]], memo: _Memo) -> None:
    best = table[0]
    best["vs_best"] = "best"
    best_rs = grouped[tuple(best[k] for k in KEY)]
    tested = []
    for row in table[1:]:
        cmp = compare(best_rs, grouped[tuple(row[k] for k in KEY)], row["metric"], memo)
        if cmp is None:
            row["vs_best"] = "untested"  # a single seed without predictions, or no shared seed
            continue
        row.update(p_vs_best_raw=cmp.p, diff_low=cmp.low, diff_high=cmp.high, vs_best_method=cmp.method)
        tested.append(row)
    # Holm over the rows compared with the best: family-wise error 5 %
    for row, p in zip(tested, stats.holm([r["p_vs_best_raw"] for r in tested])):
        row.update(p_vs_best=p, vs_best="worse" if p < 1 - stats.LEVEL else "tied")


def _tables(rows: list[dict[str, Any]]) -> dict[tuple, list[dict[str, Any]]]:
    out: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[tuple(r[a] for a in TABLE)].append(r)
    return out


def extras(rows: list[dict[str, Any]]) -> list[str]:
    return sorted({k[: -len("_mean")] for r in rows for k in r if k.endswith("_mean") and k != "mean"})


# ----------------------------------------------------------------- cells shared by the formats


def fmt_mean(row: dict[str, Any], name: str = "") -> str:
    """mean ± std over seeds; the mean alone where one seed gives no spread."""
    prefix = f"{name}_" if name else ""
    std = row.get(f"{prefix}std")
    mean = f"{row[f'{prefix}mean']:.3f}"
    return mean if std is None else f"{mean} ± {std:.3f}"


def fmt_interval(row: dict[str, Any]) -> str:
    if row["ci_low"] is None:
        return "n/a"
    note = {stats.T_ONLY: " (t)", stats.TEST_ONLY: " (test sampling only)"}.get(row["ci_method"], "")
    return f"[{row['ci_low']:.3f}, {row['ci_high']:.3f}]{note}"


def fmt_vs_best(row: dict[str, Any]) -> str:
    if row["vs_best"] in ("best", "untested", ""):
        return row["vs_best"]
    mark = "≈ " if row["vs_best"] == "tied" else ""
    p = row["p_vs_best"]
    note = " (test sampling only)" if stats.TEST_ONLY in row.get("vs_best_method", "") else ""
    return (f"{mark}p<0.001" if p < 0.001 else f"{mark}p={p:.3f}") + note


def headers(rows: list[dict[str, Any]]) -> list[str]:
    metric = rows[0]["metric"]
    return ["#", *COLUMNS, metric, "95% CI", "vs best", *extras(rows), "seeds", "n_test"]


def cells(i: int, row: dict[str, Any], extra_metrics: list[str]) -> list[str]:
    return [
        str(i),
        *(row[a] for a in COLUMNS),
        fmt_mean(row),
        fmt_interval(row),
        fmt_vs_best(row),
        *(fmt_mean(row, n) for n in extra_metrics),
        str(row["n_seeds"]),
        str(row["n_test"]),
    ]


def title(task: str, rows: list[dict[str, Any]]) -> str:
    return f"{task}: test {rows[0]['metric']} (mean ± std over seeds, 95 % CI), best first"


def render(rows: list[dict[str, Any]], console: Console) -> None:
    if not rows:
        console.print("[yellow]no results yet")
        return
    if console.width < 110:  # e.g. an 80-column terminal: stacked cells, nothing cut
        return _render_narrow(rows, console)
    for task, task_rows in by_task(rows).items():
        names = extras(task_rows)
        table = Table(title=title(task, task_rows), title_justify="left")
        for j, col in enumerate(headers(task_rows)):
            table.add_column(
                col,
                justify="left" if 1 <= j <= len(COLUMNS) else "right",
                style="dim" if j == 0 else ("bold" if j == len(COLUMNS) + 1 else None),
            )
        for i, r in enumerate(task_rows, 1):
            table.add_row(*cells(i, r, names), style="bold green" if r["vs_best"] in ("best", "tied") else None)
        console.print(table)
    console.print(f"[dim]{LEGEND}", highlight=False)


# ------------------------------------------------------------ a narrow terminal (under 110 columns)
# One row per combination, the entries stacked in one column and each score with its
# interval below it, so nothing is cut to 'representat…'.


def _render_narrow(rows: list[dict[str, Any]], console: Console) -> None:
    for task, task_rows in by_task(rows).items():
        names = extras(task_rows)
        metric = task_rows[0]["metric"]
        table = Table(
            title=escape(title(task, task_rows)),
            title_justify="left",
            box=box.SIMPLE_HEAD,
            padding=(0, 1),
            expand=False,
        )
        table.add_column("#", style="dim", justify="right")
        table.add_column("\n".join(COLUMNS), overflow="fold", min_width=18)
        table.add_column(f"{escape(metric)}\n95% CI", justify="right", no_wrap=True)
        table.add_column("vs best", justify="right", overflow="fold")
        if names:
            table.add_column("\n".join(escape(n) for n in names), justify="right", no_wrap=True)
        table.add_column("seeds\nn_test", justify="right", no_wrap=True)
        for i, r in enumerate(task_rows, 1):
            cells = [
                str(i),
                "\n".join(escape(r[a]) for a in COLUMNS),
                f"{fmt_mean(r)}\n{fmt_interval(r)}",
                fmt_vs_best(r),
            ]
            if names:
                cells.append("\n".join(fmt_mean(r, n) for n in names))
            cells.append(f"{r['n_seeds']}\n{r['n_test']}")
            table.add_row(*cells, style="bold green" if r["vs_best"] in ("best", "tied") else None)
        console.print(table)
    console.print(f"[dim]{escape(LEGEND)}", highlight=False)


def markdown(rows: list[dict[str, Any]]) -> str:
    parts = []
    for task, task_rows in by_task(rows).items():
        names = extras(task_rows)
        head = headers(task_rows)
        parts.append(f"## {task}\n\nTest {task_rows[0]['metric']}, mean ± std over seeds, best first.\n")
        parts.append("| " + " | ".join(head) + " |")
        parts.append("|" + "|".join("---" if 1 <= i <= len(COLUMNS) else "---:" for i in range(len(head))) + "|")
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
    from harness.report.figures import leaderboard_png

    leaderboard_png(rows, path)  # unchanged rows: the cached PNG
