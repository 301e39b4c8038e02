"""Seeded, stratified train/valid/test splits, optionally keeping groups together."""

from __future__ import annotations

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
