"""Ranking combinations across every task and dataset of a run (Demsar 2006).

Each table (a task on a dataset) ranks the combinations (representation / perturbation /
model) it holds, best rank 1, ties sharing the mean rank, by the table's metric in its
direction. Combinations are compared on the tables they all share: the mean rank over
those N tables, the Friedman test of "all combinations equal", and the Nemenyi critical
difference CD = q_0.05(k) * sqrt(k (k + 1) / (6 N)); two combinations whose mean ranks
differ by less than CD are not distinguishable. With fewer than two shared tables there
is nothing to rank across.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from harness.report import leaderboard
from harness.services.records import row_label


@dataclass(frozen=True)
class Ranking:
    names: list[str]  # combinations, best mean rank first
    mean_ranks: list[float]
    n_tables: int
    cd: float  # Nemenyi critical difference at 0.05
    friedman_p: float
    tables: list[str]


def combination(row: dict[str, Any]) -> str:
    return row_label(row)


def rank_across(rows: list[dict[str, Any]]) -> Ranking | None:
    """Mean ranks over the tables every ranked combination appears in; None when fewer than
    two tables or two combinations are shared."""
    from scipy import stats

    tables = leaderboard.by_task(rows)
    per_table = {
        t: {combination(r): r["mean"] * (1 if r.get("higher_is_better", True) else -1) for r in rs}
        for t, rs in tables.items()
    }
    if len(per_table) < 2:
        return None
    shared = sorted(set.intersection(*(set(v) for v in per_table.values())))
    if len(shared) < 2:
        return None
    names = list(per_table)
    scores = np.array([[per_table[t][c] for c in shared] for t in names])  # (N, k), higher better
    ranks = np.vstack([stats.rankdata(-s) for s in scores])
    mean = ranks.mean(axis=0)
    n, k = scores.shape
    q = stats.studentized_range.ppf(0.95, k, np.inf) / np.sqrt(2)
    cd = float(q * np.sqrt(k * (k + 1) / (6 * n)))
    try:
        p = float(stats.friedmanchisquare(*scores.T).pvalue) if k >= 3 else float("nan")
    except ValueError:
        p = float("nan")
    order = np.argsort(mean, kind="stable")
    return Ranking([shared[i] for i in order], [float(mean[i]) for i in order], n, cd, p, names)


def cliques(r: Ranking) -> list[tuple[int, int]]:
    """Maximal runs (first, last index in rank order) of combinations within CD of each other."""
    out: list[tuple[int, int]] = []
    m = r.mean_ranks
    for i in range(len(m)):
        j = i
        while j + 1 < len(m) and m[j + 1] - m[i] < r.cd:
            j += 1
        if j > i and not any(a <= i and j <= b for a, b in out):
            out.append((i, j))
    return out
