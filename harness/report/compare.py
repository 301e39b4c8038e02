"""`harness compare RESULTS ROW_A ROW_B`: any two leaderboard rows, paired per seed.

A row is named as the leaderboard shows it: `task/representation/perturbation/model`,
optionally prefixed by `dataset:`; shell-style wildcards are allowed but must pick one
row. The comparison is the leaderboard's (`harness.report.stats`): per-seed differences on
the shared splits, Student t over seeds with a test-sampling floor, one test, so no
multiplicity correction.
"""

from __future__ import annotations

import csv
import fnmatch
import io
import json
from typing import Any, Iterable

from harness.report import leaderboard
from harness.services.errors import UserError
from harness.services.records import UnitResult


def row_id(key: tuple) -> str:
    dataset, task, rep, pert, model = key
    return f"{dataset}:{task}/{rep}/{pert}/{model}"


def _pick(pattern: str, keys: Iterable[tuple]) -> tuple:
    keys = list(keys)
    full = pattern if ":" in pattern else f"*:{pattern}"
    hits = [k for k in keys if fnmatch.fnmatchcase(row_id(k), full)]
    if len(hits) == 1:
        return hits[0]
    known = ", ".join(sorted(row_id(k) for k in keys)[:8]) + (" ..." if len(keys) > 8 else "")
    if not hits:
        raise UserError(
            f"no leaderboard row matches {pattern!r}; rows are named "
            f"dataset:task/representation/perturbation/model, e.g. {known}"
        )
    raise UserError(
        f"{pattern!r} matches {len(hits)} rows ({', '.join(sorted(map(row_id, hits))[:5])}); "
        "name one (add the task, perturbation or dataset:)"
    )


def compare_rows(results: Iterable[UnitResult], a: str, b: str, metric: str | None = None) -> dict[str, Any]:
    """Rows A and B (mean, spread, interval) and A minus B, paired on their shared seeds."""
    grouped = leaderboard.groups(results)
    if metric:
        grouped = leaderboard.rescored(grouped, metric)
    if not grouped:
        raise UserError("no results to compare")
    ka, kb = _pick(a, grouped), _pick(b, grouped)
    if ka == kb:
        raise UserError(f"{a!r} and {b!r} name the same row {row_id(ka)}")
    if ka[:2] != kb[:2]:
        raise UserError(
            f"{row_id(ka)} and {row_id(kb)} were scored on different tasks or test sets: "
            "only rows of one table can be compared"
        )
    memo = leaderboard._Memo()
    row_a, row_b = (leaderboard._row(k, grouped[k], memo) for k in (ka, kb))
    cmp = leaderboard.compare(grouped[ka], grouped[kb], row_a["metric"], memo)
    shared = sorted({r.seed for r in grouped[ka]} & {r.seed for r in grouped[kb]})
    out: dict[str, Any] = {
        "metric": row_a["metric"],
        "a": row_id(ka),
        "b": row_id(kb),
        "shared_seeds": shared,
        "a_mean": row_a["mean"],
        "a_std": row_a["std"],
        "a_ci_low": row_a["ci_low"],
        "a_ci_high": row_a["ci_high"],
        "b_mean": row_b["mean"],
        "b_std": row_b["std"],
        "b_ci_low": row_b["ci_low"],
        "b_ci_high": row_b["ci_high"],
        "diff": None,
        "diff_low": None,
        "diff_high": None,
        "p": None,
        "method": "",
        "verdict": "untested",
    }
    if cmp is not None:
        diff = (cmp.low + cmp.high) / 2
        better = row_a["direction"] * diff > 0
        out.update(
            diff=diff,
            diff_low=cmp.low,
            diff_high=cmp.high,
            p=cmp.p,
            method=cmp.method,
            verdict=("A better" if better else "B better") if cmp.distinguishable else "not distinguishable",
        )
    return out


def _text(c: dict[str, Any]) -> list[tuple[str, str]]:
    def side(x: str) -> str:
        std = "" if c[f"{x}_std"] is None else f" ± {c[f'{x}_std']:.3f}"
        ci = "n/a" if c[f"{x}_ci_low"] is None else f"[{c[f'{x}_ci_low']:.3f}, {c[f'{x}_ci_high']:.3f}]"
        return f"{c[f'{x}_mean']:.3f}{std}  95% CI {ci}"

    diff = (
        "n/a"
        if c["diff"] is None
        else f"{c['diff']:+.3f}  95% CI [{c['diff_low']:+.3f}, {c['diff_high']:+.3f}]  p={c['p']:.3g}"
    )
    return [
        ("metric", c["metric"]),
        ("A", c["a"]),
        ("A score", side("a")),
        ("B", c["b"]),
        ("B score", side("b")),
        ("shared seeds", " ".join(map(str, c["shared_seeds"])) or "none"),
        ("A - B", diff),
        ("method", c["method"] or "-"),
        ("verdict", c["verdict"]),
    ]


def render(c: dict[str, Any], console) -> None:
    from rich.table import Table

    table = Table(
        title="paired comparison (one test: no multiplicity correction)", title_justify="left", show_header=False
    )
    table.add_column(style="bold")
    table.add_column()
    for k, v in _text(c):
        table.add_row(k, v)
    console.print(table)


def markdown(c: dict[str, Any]) -> str:
    return "\n".join(["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in _text(c))]) + "\n"


def to_csv(c: dict[str, Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(c), lineterminator="\n")
    w.writeheader()
    w.writerow({k: (" ".join(map(str, v)) if isinstance(v, list) else ("" if v is None else v)) for k, v in c.items()})
    return buf.getvalue()


def to_json(c: dict[str, Any]) -> str:
    return json.dumps(c, indent=2, ensure_ascii=False)
