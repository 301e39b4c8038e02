"""Confidence intervals and paired comparisons of leaderboard rows, from stored test predictions.

Interval: a percentile bootstrap over test materials. Each replicate redraws every seed's
test set (with replacement, within each class, so class counts and hence ROC-AUC stay
defined, as in the stratified split), recomputes the metric per seed and averages over
seeds, exactly as the row's number is made. Why not a t-interval over seeds: with three
seeds it has two degrees of freedom (t = 4.30) and rests on three numbers being normal;
the bootstrap uses every test crystal and states how far the number could move with
another draw of test crystals of the same kind. Seed-to-seed spread stays beside it as
± std. Rows without stored predictions (older results) fall back to the t-interval.

Paired test: a row and the best row of its table were scored on the same splits, so the
same resampled test materials are fed to both and the difference of their seed-mean
metrics is bootstrapped. A row whose 95 % interval of the difference contains zero is
"not distinguishable from the best". Pairing removes the shared difficulty of the test
set, which unpaired intervals double-count: two rows can overlap widely and still differ
reliably. Without predictions: a paired t-test over the shared seeds.

Every draw comes from a generator seeded by the rows' names, so a table is reproducible
to the byte.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from harness import metrics

N_BOOT = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Predictions:
    """One seed's test predictions: labels and class probabilities, by material id."""

    ids: list[str]
    y: np.ndarray
    proba: np.ndarray

    @classmethod
    def from_stored(cls, stored: dict) -> "Predictions":
        return cls(list(stored["ids"]), np.asarray(stored["y"], dtype=int), np.asarray(stored["proba"], dtype=float))

    def align(self, other: "Predictions") -> tuple["Predictions", "Predictions"]:
        """Both restricted to the materials they share, in one order (a representation
        may have skipped a crystal the other kept)."""
        if self.ids == other.ids:
            return self, other
        where = {m: i for i, m in enumerate(other.ids)}
        mine = [i for i, m in enumerate(self.ids) if m in where]
        theirs = [where[self.ids[i]] for i in mine]
        return self.take(mine), other.take(theirs)

    def take(self, index: Sequence[int]) -> "Predictions":
        index = np.asarray(index, dtype=int)
        return Predictions([self.ids[i] for i in index], self.y[index], self.proba[index])


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    method: str  # "bootstrap" (test materials, pooled over seeds) or "t" (over seeds)


def stable_rng(*parts: object) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32("|".join(map(str, parts)).encode()))


def stratified_counts(y: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, len(y)) multiplicities of a bootstrap draw within each class."""
    counts = np.zeros((n_boot, len(y)), dtype=np.int32)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = len(members)
        draws = rng.integers(0, k, size=(n_boot, k)) + (np.arange(n_boot) * k)[:, None]
        counts[:, members] = np.bincount(draws.ravel(), minlength=n_boot * k).reshape(n_boot, k)
    return counts


# ----------------------------------------------------------------- weighted metrics
# A bootstrap replicate is the test set with integer weights (how often each material was
# drawn); these compute a metric for all replicates at once and equal the metric of
# `harness.metrics` on the repeated materials (tests check it).


def _weighted_binary_auc(score: np.ndarray, positive: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Mann-Whitney with weights: each positive wins the negatives scored below it and
    half of those tied with it. Integer arithmetic, so exact."""
    order = np.argsort(score, kind="stable")
    s, pos = score[order], positive[order]
    w = np.asarray(w)[:, order]
    neg_w = np.where(pos, 0, w)
    cum = np.zeros((len(w), len(s) + 1), dtype=np.int64)
    np.cumsum(neg_w, axis=1, out=cum[:, 1:])
    _, start, size = np.unique(s, return_index=True, return_counts=True)
    group = np.repeat(np.arange(len(start)), size)[pos]
    below, upto = cum[:, start[group]], cum[:, (start + size)[group]]  # negatives < s_i and <= s_i
    twice_wins = np.einsum("bi,bi->b", w[:, pos].astype(np.int64), below + upto)
    den = w[:, pos].sum(axis=1, dtype=np.int64) * cum[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return 0.5 * twice_wins / den


def weighted_roc_auc(y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    if proba.shape[1] == 2:
        return _weighted_binary_auc(proba[:, 1], y == 1, w)
    # one-vs-rest, macro average over every class (as sklearn's multi_class="ovr")
    return np.mean([_weighted_binary_auc(proba[:, k], y == k, w) for k in range(proba.shape[1])], axis=0)


def weighted_accuracy(y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    correct = (np.argmax(proba, axis=1) == y).astype(float)
    return (w @ correct) / w.sum(axis=1)


def weighted_macro_f1(y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    pred = np.argmax(proba, axis=1)
    scores = []
    for k in np.unique(y):
        tp = w @ ((pred == k) & (y == k)).astype(float)
        fp = w @ ((pred == k) & (y != k)).astype(float)
        fn = w @ ((pred != k) & (y == k)).astype(float)
        den = 2 * tp + fp + fn
        scores.append(np.divide(2 * tp, den, out=np.zeros_like(den), where=den > 0))
    return np.mean(scores, axis=0)


WEIGHTED: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "roc_auc": weighted_roc_auc,
    "accuracy": weighted_accuracy,
    "macro_f1": weighted_macro_f1,
}


def replicate_scores(metric: str, pred: Predictions, counts: np.ndarray) -> np.ndarray:
    """The metric on every bootstrap replicate (rows of `counts`)."""
    fast = WEIGHTED.get(metric)
    if fast is not None:
        return fast(pred.y, pred.proba, counts)
    score = metrics.get(metric)  # a plugin's metric: one call per replicate
    out = np.empty(len(counts))
    for b, row in enumerate(counts):
        index = np.repeat(np.arange(len(row)), row)
        out[b] = score(pred.y[index], pred.proba[index])
    return out


# ----------------------------------------------------------------- intervals and tests


def _percentiles(values: np.ndarray) -> tuple[float, float]:
    alpha = (1 - LEVEL) / 2
    low, high = np.nanquantile(values, [alpha, 1 - alpha])
    return float(low), float(high)


def bootstrap_interval(metric: str, seeds: Sequence[Predictions], rng: np.random.Generator,
                       n_boot: int = N_BOOT) -> Interval:
    """95 % percentile interval of the seed-mean metric, test materials resampled per seed."""
    per_seed = [replicate_scores(metric, p, stratified_counts(p.y, n_boot, rng)) for p in seeds]
    low, high = _percentiles(np.mean(per_seed, axis=0))
    return Interval(low, high, "bootstrap")


def t_interval(values: Sequence[float]) -> Interval | None:
    """95 % Student-t interval of the mean over seeds; None with fewer than two seeds."""
    from scipy import stats

    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return None
    half = stats.t.ppf(1 - (1 - LEVEL) / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return Interval(float(values.mean() - half), float(values.mean() + half), "t")


@dataclass(frozen=True)
class Comparison:
    """The best row minus another row, on the same splits."""

    low: float  # 95 % interval of the difference
    high: float
    p: float  # two-sided
    method: str  # "paired bootstrap" or "paired t"

    @property
    def distinguishable(self) -> bool:
        return not (self.low <= 0.0 <= self.high)


def paired_bootstrap(metric: str, best: Sequence[Predictions], other: Sequence[Predictions],
                     rng: np.random.Generator, n_boot: int = N_BOOT) -> Comparison | None:
    """Bootstrap of mean_seeds(metric(best) - metric(other)), one draw feeding both rows.

    `best` and `other` list the predictions of the seeds both rows have, in one order."""
    diffs = []
    for a, b in zip(best, other):
        a, b = a.align(b)
        if not len(a.ids) or not np.array_equal(a.y, b.y):
            return None  # not the same split: nothing to pair
        counts = stratified_counts(a.y, n_boot, rng)
        diffs.append(replicate_scores(metric, a, counts) - replicate_scores(metric, b, counts))
    if not diffs:
        return None
    d = np.mean(diffs, axis=0)
    low, high = _percentiles(d)
    # two-sided bootstrap p-value: twice the share of replicates on the far side of zero
    p = min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))
    return Comparison(low, high, float(p), "paired bootstrap")


def paired_t(best: Sequence[float], other: Sequence[float]) -> Comparison | None:
    """Paired t-test over seeds (same seeds, same splits) when no predictions are stored."""
    from scipy import stats

    d = np.asarray(best, dtype=float) - np.asarray(other, dtype=float)
    if len(d) < 2:
        return None
    if np.all(d == d[0]):  # no spread: the difference is exact
        return Comparison(float(d[0]), float(d[0]), 1.0 if d[0] == 0 else 0.0, "paired t")
    ci = t_interval(d)
    p = float(stats.ttest_1samp(d, 0.0).pvalue)
    return Comparison(ci.low, ci.high, p, "paired t")
