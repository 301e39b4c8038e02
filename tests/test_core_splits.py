"""Splits: seeded, stratified, 70/15/15, groups never cross."""

import numpy as np
import pytest

from harness.services.errors import UserError
from harness.prepare.splits import check_classes, stratified_split


def _labels(n=1000, seed=0):
    return np.random.default_rng(seed).integers(0, 3, n)


def test_same_seed_same_split_and_different_seed_different_split():
    y = _labels()
    a, b, c = stratified_split(y, 0), stratified_split(y, 0), stratified_split(y, 1)
    assert all(np.array_equal(getattr(a, k), getattr(b, k)) for k in ("train", "valid", "test"))
    assert not np.array_equal(a.test, c.test)


def test_fractions_partition_and_stratification():
    y = _labels()
    s = stratified_split(y, 3)
    parts = np.concatenate([s.train, s.valid, s.test])
    assert sorted(parts.tolist()) == list(range(len(y)))
    assert len(s.train) == pytest.approx(700, abs=2) and len(s.test) == pytest.approx(150, abs=2)
    for part in (s.train, s.valid, s.test):
        share = np.bincount(y[part], minlength=3) / len(part)
        assert np.allclose(share, np.bincount(y, minlength=3) / len(y), atol=0.02)


def test_groups_stay_on_one_side():
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 200, 1000)
    y = groups % 2  # label follows the group, as for near-copies of one parent
    s = stratified_split(y, 0, groups=groups)
    sides = [set(groups[p]) for p in (s.train, s.valid, s.test)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert 0.6 < len(s.train) / 1000 < 0.8


def test_a_split_with_one_class_is_a_user_error():
    y = np.array([0] * 50 + [1] * 2)
    s = stratified_split(y, 0)
    s = type(s)(s.train, s.valid, s.test[y[s.test] == 0])
    with pytest.raises(UserError, match="single class"):
        check_classes(s, y, ("a", "b"), "task t")


def _sklearn_folds(y, groups, n_splits, seed):
    import warnings

    from sklearn.model_selection import StratifiedGroupKFold

    fold = np.empty(len(y), dtype=int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        for k, (_, members) in enumerate(cv.split(np.zeros(len(y)), y, groups)):
            fold[members] = k
    return fold


@pytest.mark.parametrize("case", range(60))
def test_grouped_folds_are_scikit_learns_exactly(case):
    """The fast fold assignment against StratifiedGroupKFold itself: many small groups,
    few large ones, repeated class profiles (ties between folds), string group names."""
    from harness.prepare.splits import group_folds

    rng = np.random.default_rng(case)
    n = int(rng.integers(40, 800))
    y = rng.integers(0, int(rng.integers(2, 5)), n)
    n_groups = int(rng.integers(20, n)) if case % 3 else n // 4
    groups = np.array([f"AB{g}_225" for g in rng.integers(0, n_groups, n)])
    n_splits = int(min(20, len(np.unique(groups)), rng.integers(3, 21)))
    seed = int(rng.integers(0, 1000))
    mine = group_folds(y, groups, n_splits, seed)
    if mine is None:  # a class smaller than the folds: scikit-learn decides
        assert np.bincount(y).min() < n_splits
        return
    np.testing.assert_array_equal(mine, _sklearn_folds(y, groups, n_splits, seed))


def test_a_grouped_split_with_a_rare_class_is_still_scikit_learns():
    y = np.array([0] * 200 + [1] * 5)
    groups = np.arange(205) // 2
    split = stratified_split(y, 4, groups=groups)
    fold = _sklearn_folds(y, groups, 20, 4)
    np.testing.assert_array_equal(split.test, np.flatnonzero(fold < 3))
