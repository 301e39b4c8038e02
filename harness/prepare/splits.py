"""Seeded, stratified train/valid/test splits, optionally keeping groups together."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from harness.services.errors import UserError

N_FOLDS = 20  # grouped splits assign whole folds: fractions are rounded to 1/20


@dataclass(frozen=True)
class Split:
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def stratified_split(
    y: np.ndarray,
    seed: int,
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
    groups: np.ndarray | None = None,
) -> Split:
    """Indices into `y`. Same inputs and seed give the same split on any machine."""
    y = np.asarray(y)
    n = len(y)
    _, valid_frac, test_frac = fractions
    if groups is None or len(np.unique(groups)) == n:
        idx = np.arange(n)
        rest, test = _split(idx, y, test_frac, seed)
        train, valid = _split(rest, y[rest], valid_frac / (1 - test_frac), seed)
    else:
        from sklearn.model_selection import StratifiedGroupKFold

        n_groups = len(np.unique(groups))
        if n_groups < 3:
            raise UserError(
                f"only {n_groups} groups of related materials: too few for a train/valid/test "
                'split; use group_by = "none" or more data'
            )
        folds = min(N_FOLDS, n_groups)
        fold = group_folds(y, groups, folds, seed)
        if fold is None:  # few members in a class: scikit-learn's own checks and warnings
            fold = np.empty(n, dtype=int)
            cv = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
            for k, (_, members) in enumerate(cv.split(np.zeros(n), y, groups)):
                fold[members] = k
        n_test = max(1, round(test_frac * folds))
        n_valid = max(1, round(valid_frac * folds))
        test = np.flatnonzero(fold < n_test)
        valid = np.flatnonzero((fold >= n_test) & (fold < n_test + n_valid))
        train = np.flatnonzero(fold >= n_test + n_valid)
    return Split(np.sort(train), np.sort(valid), np.sort(test))


def group_folds(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> np.ndarray | None:
    """The fold of each sample as `StratifiedGroupKFold(n_splits, shuffle=True,
    random_state=seed)` assigns it, bit for bit, in a fraction of the time; None where
    a class has fewer members than folds (scikit-learn then warns or refuses).

    scikit-learn places the groups one by one, trying each fold in turn and scoring the
    class balance of all folds (a NumPy call per fold and group: seconds for 4,000 groups,
    the slowest step of preparing a grouped split). Here the 20 trials of a group are one
    array operation; the arithmetic, the order and the tie rule are scikit-learn's (the same
    `np.std` over the same values, `np.isclose`'s tolerance), so the folds are identical,
    which tests check against scikit-learn itself."""
    _, y_inv, y_cnt = np.unique(y, return_inverse=True, return_counts=True)
    if len(y_cnt) < 2 or n_splits > np.min(y_cnt):
        return None
    _, groups_inv, groups_cnt = np.unique(groups, return_inverse=True, return_counts=True)
    n_groups, n_classes = len(groups_cnt), len(y_cnt)
    counts_per_group = np.zeros((n_groups, n_classes))
    np.add.at(counts_per_group, (groups_inv, y_inv), 1)
    perm = np.arange(n_groups)
    np.random.RandomState(seed).shuffle(perm)
    counts_per_group = counts_per_group[perm]
    inv_perm = np.empty_like(perm)
    inv_perm[perm] = np.arange(perm.size)
    groups_inv = inv_perm[groups_inv]
    order = np.argsort(-np.std(counts_per_group, axis=1), kind="stable")
    counts_per_fold = np.zeros((n_splits, n_classes))
    fold_of_group = np.empty(n_groups, dtype=int)
    diagonal = (np.arange(n_splits), np.arange(n_splits))
    scale = y_cnt.reshape(1, 1, -1)
    for g in order:
        trial = np.broadcast_to(counts_per_fold, (n_splits, n_splits, n_classes)).copy()
        trial[diagonal] += counts_per_group[g]  # trial[i]: the folds with g placed in fold i
        evals = np.mean(np.std(trial / scale, axis=1), axis=1).tolist()
        sizes = counts_per_fold.sum(axis=1).tolist()
        best, min_eval, min_size = 0, float("inf"), float("inf")
        for i, (e, size) in enumerate(zip(evals, sizes)):
            close = (abs(e - min_eval) <= 1e-08 + 1e-05 * abs(min_eval) and math.isfinite(min_eval)) or e == min_eval
            if e < min_eval or (close and size < min_size):
                best, min_eval, min_size = i, e, size
        counts_per_fold[best] += counts_per_group[g]
        fold_of_group[g] = best
    return fold_of_group[groups_inv]


def _split(idx: np.ndarray, y: np.ndarray, frac: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    try:
        a, b = train_test_split(idx, test_size=frac, random_state=seed, stratify=y)
    except ValueError:  # a class too rare to stratify: plain shuffle
        a, b = train_test_split(idx, test_size=frac, random_state=seed)
    return np.asarray(a), np.asarray(b)


def check_classes(split: Split, y: np.ndarray, classes: tuple[str, ...], where: str) -> None:
    """Every split needs two classes, or training and scoring are meaningless."""
    for part in ("train", "valid", "test"):
        present = np.unique(y[getattr(split, part)])
        if len(present) < 2:
            only = ", ".join(classes[i] for i in present) or "nothing"
            raise UserError(
                f"{where}: the {part} split holds a single class ({only}); "
                "use a larger or more balanced dataset, or change the task's threshold"
            )


def split_value(value: object) -> str:
    """A split column's value as compared with the names of the parts: lower-case, and a
    path read as its file name without extensions ("data/Train.csv.gz" -> "train")."""
    text = str(value).strip()
    if "/" in text or "\\" in text or text.count(".") >= 1 and not text.replace(".", "").isdigit():
        text = text.replace("\\", "/").rsplit("/", 1)[-1].split(".", 1)[0]
    return text.lower()


def column_split(
    values: list[object],
    names: dict[str, str],
    y: np.ndarray,
    seed: int,
    fractions: tuple[float, float, float],
    where: str,
) -> Split:
    """The split a dataset ships: each material's part read from its column value.

    Without a valid part (many datasets ship train and test only), validation materials are
    drawn from the train part, stratified and seeded, at the run's valid / (train + valid)."""
    parts = [names.get(split_value(v)) if v not in (None, "") else None for v in values]
    unknown = [v for v, p in zip(values, parts) if p is None]
    if unknown:
        example = next((v for v in unknown if v not in (None, "")), None)
        what = f"the value {example!r}" if example is not None else "no value"
        raise UserError(
            f"{where}: {len(unknown)} labelled materials have {what} in the split column, which names "
            f"no part (known: {', '.join(sorted(names))}); map it with split_values = "
            "{ train = [...], valid = [...], test = [...] } under the dataset"
        )
    index = {p: np.flatnonzero(np.asarray(parts) == p) for p in ("train", "valid", "test")}
    for p in ("train", "test"):
        if not index[p].size:
            raise UserError(
                f"{where}: the split column marks no material as {p}; "
                f"map its values with split_values = {{ {p} = [...] }} under the dataset"
            )
    train, valid = index["train"], index["valid"]
    if not valid.size:
        share = fractions[1] / (fractions[0] + fractions[1])
        train, valid = _split(train, y[train], share, seed)
    return Split(np.sort(train), np.sort(valid), np.sort(index["test"]))
