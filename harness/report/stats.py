"""Confidence intervals and paired comparisons of leaderboard rows, from stored test predictions.

What varies. A row's number is the mean over seeds of a metric, and each seed draws its
own split, initialisation and tuning trials, then scores its own test set. Two sources of
variance reach that number: the seed (which crystals trained the model, where it started,
what the tuner found) and the test sampling (which crystals it was scored on). In
small-data materials benchmarks the first usually dominates (Bouthillier et al., MLSys
2021), so an interval that resamples test materials only is too narrow.

Interval (2 or more seeds): a Student-t interval over the k seed values, k - 1 degrees of
freedom:

    mean ± t(0.975, k-1) * sqrt(s² / k + v_shared)

s² is the variance of the seed values. With the usual random split every seed draws its
own split and so its own test set: each seed value then carries both sources, s² / k
estimates the whole variance of their mean without bias, and the t quantile accounts for
estimating it from k numbers (exact coverage for normal seed values, whatever the share of
test sampling). v_shared is 0 then. Where every seed was scored on the *same* materials (a
fixed column split, a held-out family, an evaluate dataset), their test sampling is common
to all seeds and does not average out, and s² does not see it: v_shared is the bootstrap
variance of the seed mean with those materials redrawn once for all seeds.

Why not a two-level bootstrap (resample seeds, then materials): with 3 seeds it takes
percentiles of at most 10 distinct means and covers the truth in about 73 % of normal
samples (the 2-df t quantile is 4.30; the bootstrap's effective one about 1.4). Why not
add the within-seed bootstrap variance to s² (or floor s² by it) when each seed has its
own test set: s² already contains it, so that counts test sampling twice; in simulation a
floor alone pushed coverage to 98-99 % whenever test sampling was a fifth of the variance.
The simulation tests (tests/test_stats_seed_variance.py) check 92-98 % coverage when seed
variance dominates, for own and shared test sets.

Interval (1 seed): a percentile bootstrap over the seed's test materials (within each
class, so class counts and ROC-AUC stay defined), labelled "test sampling only": one seed
says nothing about seed variance, and the table shows no "± std" for it.

Paired comparison. Every combination of a task and seed shares one split, so a row and
the best row are compared seed by seed: d_s = metric(best, s) - metric(row, s) on the
materials both scored. The same t construction on the d_s gives the interval of the
difference and a two-sided p-value (v_shared: the joint bootstrap of the mean difference
where the seeds share one test set). Pairing removes what the rows share (a hard split is
hard for both), which unpaired intervals double-count. With one shared seed the paired
bootstrap over test materials is used and labelled test sampling only.

Several rows against the best: the p-values of a table are Holm-adjusted (family-wise
error 5 % over the rows compared with the best); a row is "worse" when its adjusted
p < 0.05, else "not distinguishable from the best". Choosing the best by its observed
mean and then testing against it is biased towards finding differences only as far as a
two-sided test allows for (both orders count), which Holm keeps within 5 %.

Every draw comes from a generator seeded by the content of the predictions, so a table
is reproducible to the byte.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from harness.sdk import metrics

N_BOOT = 1000
LEVEL = 0.95


@dataclass(frozen=True)
class Predictions:
    """One seed's test predictions: labels and class probabilities, by material id."""

    ids: list[str]
    y: np.ndarray
    proba: np.ndarray

    @classmethod
    def from_stored(cls, stored: dict) -> Predictions:
        return cls(list(stored["ids"]), np.asarray(stored["y"], dtype=int), np.asarray(stored["proba"], dtype=float))

    def align(self, other: Predictions) -> tuple[Predictions, Predictions]:
        """Both restricted to the materials they share, in one order (a representation
        may have skipped a crystal the other kept)."""
        if self.ids == other.ids:
            return self, other
        where = {m: i for i, m in enumerate(other.ids)}
        mine = [i for i, m in enumerate(self.ids) if m in where]
        theirs = [where[self.ids[i]] for i in mine]
        return self.take(mine), other.take(theirs)

    def take(self, index: Sequence[int]) -> Predictions:
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
# `harness.sdk.metrics` on the repeated materials (tests check it).


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


def _class_counts(y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per replicate and class: true count, predicted count, true positives (B, K) each."""
    k = proba.shape[1]
    pred = np.argmax(proba, axis=1)
    true_1h = np.eye(k)[y]
    pred_1h = np.eye(k)[pred]
    w = np.asarray(w, dtype=float)
    return w @ true_1h, w @ pred_1h, w @ (true_1h * (pred == y)[:, None])


def weighted_balanced_accuracy(y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    t, _, tp = _class_counts(y, proba, w)
    present = t > 0
    recall = np.divide(tp, t, out=np.zeros_like(tp), where=present)
    return recall.sum(axis=1) / present.sum(axis=1)


def weighted_mcc(y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    t, p, tp = _class_counts(y, proba, w)
    s, c = t.sum(axis=1), tp.sum(axis=1)
    den = np.sqrt((s**2 - (p**2).sum(axis=1)) * (s**2 - (t**2).sum(axis=1)))
    return np.divide(c * s - (p * t).sum(axis=1), den, out=np.zeros_like(den), where=den > 0)


def weighted_f1(y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    t, p, tp = _class_counts(y, proba, w)
    den = t[:, 1] + p[:, 1]
    return np.divide(2 * tp[:, 1], den, out=np.zeros_like(den), where=den > 0)


def _weighted_mean(per_material: np.ndarray, w: np.ndarray) -> np.ndarray:
    w = np.asarray(w, dtype=float)
    return (w @ per_material) / w.sum(axis=1)


def weighted_brier(y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    return _weighted_mean(metrics.brier_per_material(y, proba), w)


def weighted_log_loss(y: np.ndarray, proba: np.ndarray, w: np.ndarray) -> np.ndarray:
    return _weighted_mean(-np.log(np.clip(proba[np.arange(len(y)), y], 1e-15, 1)), w)


WEIGHTED: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]] = {
    "roc_auc": weighted_roc_auc,
    "accuracy": weighted_accuracy,
    "macro_f1": weighted_macro_f1,
    "balanced_accuracy": weighted_balanced_accuracy,
    "mcc": weighted_mcc,
    "f1": weighted_f1,
    "brier": weighted_brier,
    "log_loss": weighted_log_loss,
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


def bootstrap_interval(
    metric: str, seeds: Sequence[Predictions], rng: np.random.Generator, n_boot: int = N_BOOT
) -> Interval:
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


def paired_bootstrap(
    metric: str,
    best: Sequence[Predictions],
    other: Sequence[Predictions],
    rng: np.random.Generator,
    n_boot: int = N_BOOT,
) -> Comparison | None:
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


# ----------------------------------------------------------------- seed variance (see module docstring)

T_ONLY = "t over seeds"  # also: results without predictions
SEEDS_OWN_TEST = "t over seeds (own test sets)"
SEEDS_SHARED_TEST = "t over seeds + shared test set"
TEST_ONLY = "test sampling only"


@dataclass(frozen=True)
class SeedStats:
    """One seed's metric and what test sampling alone does to it."""

    value: float  # the metric on the seed's test set
    within_var: float  # bootstrap variance of the metric over the seed's test materials
    low: float  # 95 % percentile interval over test materials
    high: float


def seed_stats(metric: str, pred: Predictions, rng: np.random.Generator, n_boot: int = N_BOOT) -> SeedStats:
    reps = replicate_scores(metric, pred, stratified_counts(pred.y, n_boot, rng))
    low, high = _percentiles(reps)
    value = float(metrics.get(metric)(pred.y, pred.proba))
    return SeedStats(value, float(np.nanvar(reps, ddof=1)), low, high)


def shared_test_set(seeds: Sequence[Predictions]) -> bool:
    """Whether every seed was scored on the same materials (a fixed column split, an extra
    evaluation set), so their test sampling does not average out over seeds."""
    first = dict(zip(seeds[0].ids, seeds[0].y.tolist()))
    return len(seeds) > 1 and all(
        len(p.ids) == len(first) and dict(zip(p.ids, p.y.tolist())) == first for p in seeds[1:]
    )


def shared_variance(
    metric: str, rows: Sequence[tuple[float, Sequence[Predictions]]], rng: np.random.Generator, n_boot: int = N_BOOT
) -> float:
    """Bootstrap variance of sum(weight * mean over seeds of the metric) when the shared
    test materials are redrawn once for all seeds and rows (the same materials, the same
    multiplicity): the test-sampling part that seeds do not average out."""
    ref = rows[0][1][0]
    counts = stratified_counts(ref.y, n_boot, rng)
    where = {m: i for i, m in enumerate(ref.ids)}
    total = np.zeros(n_boot)
    for weight, seeds in rows:
        per_seed = []
        for p in seeds:
            order = np.array([where[m] for m in p.ids])
            per_seed.append(replicate_scores(metric, p, counts[:, order]))
        total += weight * np.mean(per_seed, axis=0)
    return float(np.nanvar(total, ddof=1))


def _half(values: np.ndarray, shared_var: float) -> float:
    """Half-width: the t part of the seed spread and the z part of the shared test
    sampling (estimated from thousands of materials, so no t penalty), in quadrature."""
    from scipy import stats

    t = float(stats.t.ppf(1 - (1 - LEVEL) / 2, len(values) - 1))
    z = float(stats.norm.ppf(1 - (1 - LEVEL) / 2))
    return float(np.sqrt(t**2 * values.var(ddof=1) / len(values) + z**2 * shared_var))


def common_part(shared_var: float, within_vars: Sequence[float]) -> float:
    """The part of the joint bootstrap variance of the seed mean that all seeds share.

    Redrawing the shared materials moves the mean by A (what the materials do to every
    seed alike) plus B / k (each seed's own luck on them, which s² / k already holds);
    one seed's own bootstrap variance is A + B. So A = (k v_joint - v_seed) / (k - 1)."""
    k = len(within_vars)
    return max(0.0, (k * shared_var - float(np.mean(within_vars))) / (k - 1))


def seeds_interval(values: Sequence[float], shared_var: float | None = None, method: str = T_ONLY) -> Interval | None:
    """95 % interval of the mean over seeds (k >= 2): Student t with k - 1 df on the seed
    values, and the common test-sampling variance where seeds share a test set."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return None
    mean, half = float(values.mean()), _half(values, shared_var or 0.0)
    return Interval(mean - half, mean + half, method)


def row_interval(
    values: Sequence[float], seeds: Sequence[SeedStats] | None, shared_var: float | None = None
) -> Interval | None:
    """The row's interval: over seeds (2+ seeds; with the shared test-sampling variance
    where `shared_var` is given), test sampling only (1 seed with predictions), None (1
    seed, nothing stored)."""
    if len(values) >= 2:
        if seeds is None:
            return seeds_interval(values)
        if shared_var is None:
            return seeds_interval(values, None, SEEDS_OWN_TEST)
        common = common_part(shared_var, [s.within_var for s in seeds])
        return seeds_interval(values, common, SEEDS_SHARED_TEST)
    if seeds:
        return Interval(seeds[0].low, seeds[0].high, TEST_ONLY)
    return None


@dataclass(frozen=True)
class SeedDiff:
    """One shared seed: best minus other on the materials both scored."""

    diff: float
    within_var: float  # paired bootstrap variance of the difference
    low: float
    high: float
    p: float  # paired bootstrap two-sided p (used when this is the only seed)


def seed_diff(
    metric: str, best: Predictions, other: Predictions, rng: np.random.Generator, n_boot: int = N_BOOT
) -> SeedDiff | None:
    """The paired difference on one seed's split; None when the two were not scored on
    the same split (no material in common, or other labels)."""
    a, b = best.align(other)
    if not len(a.ids) or not np.array_equal(a.y, b.y):
        return None
    counts = stratified_counts(a.y, n_boot, rng)
    reps = replicate_scores(metric, a, counts) - replicate_scores(metric, b, counts)
    score = metrics.get(metric)
    diff = float(score(a.y, a.proba) - score(b.y, b.proba))
    low, high = _percentiles(reps)
    p = min(1.0, 2 * min(np.mean(reps <= 0), np.mean(reps >= 0)))
    return SeedDiff(diff, float(np.nanvar(reps, ddof=1)), low, high, float(p))


def compare_seeds(
    diffs: Sequence[float], shared_var: float | None = None, single: SeedDiff | None = None
) -> Comparison | None:
    """Best minus other over the shared seeds: paired t with k - 1 df (plus the shared
    test-sampling variance where every seed used one test set); with one seed, its
    paired bootstrap (test sampling only); None when nothing can be said."""
    from scipy import stats

    d = np.asarray(diffs, dtype=float)
    if len(d) < 2:
        if single is not None:
            return Comparison(single.low, single.high, single.p, "paired bootstrap, " + TEST_ONLY)
        return None
    method = "paired t over seeds" + (" + shared test set" if shared_var is not None else "")
    mean, half = float(d.mean()), _half(d, shared_var or 0.0)
    if half == 0:  # no spread and no test sampling: the difference is exact
        return Comparison(mean, mean, 1.0 if mean == 0 else 0.0, method)
    # p: the level at which the interval would just reach zero (the same construction)
    crit = float(stats.t.ppf(1 - (1 - LEVEL) / 2, len(d) - 1))
    p = float(2 * stats.t.sf(abs(mean) / half * crit, len(d) - 1))
    return Comparison(mean - half, mean + half, p, method)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-adjusted p-values (step-down, monotone, capped at 1): reject where < alpha
    controls the family-wise error of all the tests at alpha."""
    p = np.asarray(pvalues, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted.tolist()
