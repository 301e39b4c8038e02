"""Seeded, stratified subsets of a dataset's rows (`limit`, `fraction`).

A quick run on part of a file must look like the file: the first rows of a sorted
export are not a sample (the metallicity file's first 5,000 rows are 69 % metals where
the whole file has 42.5 %). Rows are grouped into strata by one value per row (a class,
or a bin of a number) and each stratum gives its share, rounded by largest remainder.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

NUMERIC_BINS = 10  # a numeric column with more distinct values than this is binned by quantiles
MISSING = ("missing",)


def sample_size(total: int, limit: int | None, fraction: float | None) -> int:
    """How many of `total` rows a `limit` and/or `fraction` keep (both: the smaller)."""
    n = total
    if fraction is not None:
        n = min(n, max(1, round(fraction * total)))
    if limit is not None:
        n = min(n, limit)
    return n


def strata(values: Sequence[Any], bins: int = NUMERIC_BINS) -> list[Hashable]:
    """One stratum per row: the value itself for a categorical column (or a numeric one
    with few distinct values), else its quantile bin; a missing value is a stratum of its
    own. A tie on a bin edge (e.g. the 42.5 % of band gaps that are exactly 0) keeps its
    rows in one bin, so a threshold at that value keeps its proportion exactly."""
    numbers = [_number(v) for v in values]
    present = [x for x in numbers if x is not None]
    numeric = len(present) == sum(v is not None and v != "" for v in values) and present
    if not numeric or len(set(present)) <= bins:
        return [
            MISSING if v is None or v == "" else (str(v) if not numeric else numbers[i]) for i, v in enumerate(values)
        ]
    edges = np.unique(np.quantile(np.asarray(present, dtype=float), np.linspace(0, 1, bins + 1)))
    out: list[Hashable] = []
    for x in numbers:
        # right=True: bin i holds edges[i-1] < x <= edges[i], so the minimum is a bin of its own
        out.append(MISSING if x is None else int(np.searchsorted(edges, x, side="left")))
    return out


def stratified_sample(keys: Sequence[Hashable], n: int, seed: int) -> np.ndarray:
    """Sorted positions of `n` of the rows, each stratum (equal keys) represented in
    proportion (largest remainder; ties and the draw within a stratum by `seed`)."""
    total = len(keys)
    if n >= total:
        return np.arange(total)
    rng = np.random.default_rng([seed, 0x5A3])
    groups: dict[Hashable, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    order = sorted(groups, key=repr)  # a fixed order, whatever the keys' types
    exact = [n * len(groups[k]) / total for k in order]
    quota = [math.floor(e) for e in exact]
    short = n - sum(quota)
    if short:
        tiebreak = rng.random(len(order))
        ranked = sorted(range(len(order)), key=lambda j: (-(exact[j] - quota[j]), tiebreak[j]))
        for j in ranked[:short]:
            quota[j] += 1
    chosen: list[int] = []
    for k, q in zip(order, quota):
        members = np.asarray(groups[k])
        chosen.extend(members[rng.permutation(len(members))[:q]].tolist())
    return np.sort(np.asarray(chosen, dtype=int))


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float, np.integer, np.floating)):
        return None if math.isnan(float(value)) else float(value)
    try:
        x = float(str(value).strip())
    except ValueError:
        return None
    return None if math.isnan(x) else x
