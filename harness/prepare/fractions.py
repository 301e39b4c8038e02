"""Learning curves: train on fractions of each training split, valid and test fixed.

`[run] train_fractions = [0.1, 0.25, 0.5, 1.0]` makes one study per fraction of every
(combination, seed). A fraction's training set is drawn per class from one seeded order
of the split's training materials, so it is nested (a smaller fraction's set is a subset
of a larger one's) and keeps the class shares; the valid and test parts are never read
here, so every point of a curve is scored on the same materials. Fraction 1 is the plain
study (the same key as a run without fractions).
"""

from __future__ import annotations

import numpy as np

from harness.plan.spec import SUFFIX, study_fraction  # noqa: F401  (the plan names fractions)
from harness.plan.spec import fraction_label as label  # noqa: F401
from harness.prepare.splits import Split


def nested_train(train: np.ndarray, y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The positions of `train` (indices into `y`) a fraction keeps: per class the first
    round(fraction * n_class) (at least one) of an order fixed by `seed`; in their split order."""
    train = np.asarray(train)
    if fraction >= 1:
        return train
    labels = np.asarray(y)[train]
    keep = np.zeros(len(train), dtype=bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        order = members[np.random.default_rng([seed, int(c), 0xC1]).permutation(len(members))]
        keep[order[: max(1, round(fraction * len(members)))]] = True
    return train[keep]


def nested_split(split: Split, y: np.ndarray, fraction: float | None, seed: int) -> Split:
    """`split` with its training part cut to `fraction` (None or 1: unchanged)."""
    if fraction is None or fraction >= 1:
        return split
    return Split(nested_train(split.train, y, fraction, seed), split.valid, split.test)
