"""Intervals and the paired comparison with the best row, on cases with known answers."""

import numpy as np
import pytest
from scipy import stats as scipy_stats

from harness.sdk import metrics
from harness.report import stats
from harness.report.stats import Predictions


def _binary(y, correct_prob, rng):
    """Probabilities whose argmax is right where `correct_prob` says so."""
    right = rng.random(len(y)) < correct_prob
    p1 = np.where(right == (y == 1), 0.9, 0.1)
    return np.column_stack([1 - p1, p1])


@pytest.mark.parametrize("metric, n_classes", [("roc_auc", 2), ("roc_auc", 4), ("accuracy", 3), ("macro_f1", 5)])
def test_weighted_metrics_equal_the_metric_on_the_redrawn_materials(metric, n_classes):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(n_classes), 12)
    proba = rng.dirichlet(np.ones(n_classes), len(y)).round(1)  # rounding makes ties, as trees do
    proba /= proba.sum(axis=1, keepdims=True)
    counts = stats.stratified_counts(y, 20, rng)
    fast = stats.replicate_scores(metric, Predictions([str(i) for i in range(len(y))], y, proba), counts)
    for b, row in enumerate(counts):
        index = np.repeat(np.arange(len(y)), row)
        assert fast[b] == pytest.approx(metrics.get(metric)(y[index], proba[index]), abs=1e-12)


def test_stratified_draws_keep_each_class_count():
    y = np.array([0] * 7 + [1] * 3 + [2] * 5)
    counts = stats.stratified_counts(y, 50, np.random.default_rng(1))
    for c in (0, 1, 2):
        assert (counts[:, y == c].sum(axis=1) == (y == c).sum()).all()


def test_a_perfect_classifier_has_a_point_interval():
    y = np.array([0, 1] * 50)
    proba = np.column_stack([1 - y, y]).astype(float)
    pred = Predictions([str(i) for i in range(100)], y, proba)
    iv = stats.bootstrap_interval("roc_auc", [pred, pred, pred], np.random.default_rng(0))
    assert (iv.low, iv.high, iv.method) == (1.0, 1.0, "bootstrap")


def test_accuracy_interval_matches_the_binomial_standard_error():
    # 800 materials, 80 % right in each class: the accuracy's standard error is
    # sqrt(0.8 * 0.2 / 800), so the 95 % interval is 0.8 +/- 0.0277.
    y = np.array([0, 1] * 400)
    right = np.tile(np.r_[np.ones(320), np.zeros(80)], 2)
    order = np.argsort(np.r_[np.arange(0, 800, 2), np.arange(1, 800, 2)])  # right/wrong per class
    right = right[order]
    p1 = np.where(right == (y == 1), 0.9, 0.1)
    pred = Predictions([str(i) for i in range(800)], y, np.column_stack([1 - p1, p1]))
    assert metrics.accuracy(y, pred.proba) == pytest.approx(0.8)
    iv = stats.bootstrap_interval("accuracy", [pred], np.random.default_rng(0), n_boot=4000)
    half = 1.96 * np.sqrt(0.8 * 0.2 / 800)
    assert iv.low == pytest.approx(0.8 - half, abs=0.004)
    assert iv.high == pytest.approx(0.8 + half, abs=0.004)


def test_more_seeds_narrow_the_interval_of_their_mean():
    rng = np.random.default_rng(3)
    y = np.array([0, 1] * 100)
    seeds = [Predictions([str(i) for i in range(200)], y, _binary(y, 0.75, rng)) for _ in range(4)]
    one = stats.bootstrap_interval("accuracy", seeds[:1], np.random.default_rng(0))
    four = stats.bootstrap_interval("accuracy", seeds, np.random.default_rng(0))
    assert (four.high - four.low) == pytest.approx((one.high - one.low) / 2, rel=0.2)  # 1/sqrt(4)


def test_t_interval_over_seeds_is_the_textbook_one():
    iv = stats.t_interval([0.80, 0.85, 0.90])
    half = scipy_stats.t.ppf(0.975, 2) * 0.05 / np.sqrt(3)
    assert half == pytest.approx(0.12421, abs=1e-5)
    assert (iv.low, iv.high, iv.method) == (pytest.approx(0.85 - half), pytest.approx(0.85 + half), "t")
    assert stats.t_interval([0.9]) is None


def _accuracy_case(right_a, right_b):
    y = np.array([0, 1] * (len(right_a) // 2))
    ids = [str(i) for i in range(len(y))]

    def proba(right):
        p1 = np.where(np.asarray(right, bool) == (y == 1), 0.9, 0.1)
        return np.column_stack([1 - p1, p1])

    return Predictions(ids, y, proba(right_a)), Predictions(ids, y, proba(right_b))


def test_identical_rows_are_not_distinguishable():
    rng = np.random.default_rng(0)
    a, _ = _accuracy_case(rng.random(200) < 0.8, np.ones(200))
    cmp = stats.paired_bootstrap("accuracy", [a, a], [a, a], np.random.default_rng(0))
    assert (cmp.low, cmp.high, cmp.p) == (0.0, 0.0, 1.0) and not cmp.distinguishable


def test_pairing_detects_a_small_consistent_gain_that_unpaired_intervals_hide():
    # B repeats A's predictions and corrects 15 of A's errors, harming none: B is better
    # on every possible draw of test materials, though their intervals overlap widely.
    rng = np.random.default_rng(1)
    right_a = rng.random(300) < 0.75
    right_b = right_a.copy()
    right_b[np.flatnonzero(~right_a)[:15]] = True
    a, b = _accuracy_case(right_a, right_b)
    ia = stats.bootstrap_interval("accuracy", [a], np.random.default_rng(0))
    ib = stats.bootstrap_interval("accuracy", [b], np.random.default_rng(0))
    assert ia.high > ib.low  # unpaired: overlapping
    cmp = stats.paired_bootstrap("accuracy", [b], [a], np.random.default_rng(0))
    assert cmp.distinguishable and cmp.low > 0 and cmp.p < 0.01


def test_equal_accuracy_with_different_errors_is_a_tie():
    # Same accuracy, errors on different materials (McNemar's b = c): no evidence either way.
    right_a = np.ones(300, bool)
    right_b = np.ones(300, bool)
    right_a[:40] = False
    right_b[40:80] = False
    a, b = _accuracy_case(right_a, right_b)
    cmp = stats.paired_bootstrap("accuracy", [a], [b], np.random.default_rng(0))
    assert not cmp.distinguishable and cmp.p > 0.5


def test_pairs_are_formed_by_material_id_and_different_splits_are_not_paired():
    rng = np.random.default_rng(2)
    a, b = _accuracy_case(rng.random(100) < 0.8, rng.random(100) < 0.8)
    shuffled = b.take(rng.permutation(100)[:90])  # another order, ten materials skipped
    x, y = a.align(shuffled)
    assert x.ids == y.ids and len(x.ids) == 90 and np.array_equal(x.y, y.y)
    relabelled = Predictions(b.ids, 1 - b.y, b.proba)  # same ids, other labels: not one split
    assert stats.paired_bootstrap("accuracy", [a], [relabelled], np.random.default_rng(0)) is None


def test_paired_t_fallback_over_seeds():
    cmp = stats.paired_t([0.90, 0.92, 0.91], [0.80, 0.83, 0.81])
    d = np.array([0.10, 0.09, 0.10])
    assert cmp.p == pytest.approx(scipy_stats.ttest_rel([0.90, 0.92, 0.91], [0.80, 0.83, 0.81]).pvalue)
    assert cmp.low == pytest.approx(d.mean() - scipy_stats.t.ppf(0.975, 2) * d.std(ddof=1) / np.sqrt(3))
    assert cmp.distinguishable
    assert not stats.paired_t([0.833, 0.90, 0.77], [0.822, 0.75, 0.90]).distinguishable
    assert stats.paired_t([0.9], [0.8]) is None
