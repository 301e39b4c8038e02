"""The result record every later stage reads, and the grid's axes, defined once.

A study writes one `UnitResult`; the store keeps it, the leaderboard, report, export and
user API read it. They read fields, never display titles: each axis's entry is a
structured reference (`UnitResult.entry(axis)`: name, parameters, version, title, paper
label) and each metric carries its direction (`UnitResult.higher_is_better`), both
written at study time, so a reader needs no plugin loaded and parses no string.

This module imports nothing of the harness: every stage may use it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

FRACTION_MARK = "@train="  # a fraction's results are tabled as dataset "<label>@train=<fraction>"

# The axes of a combination, in the order of its id `task/representation/perturbation/model`.
COMBINATION_AXES: tuple[str, ...] = ("task", "representation", "perturbation", "model")
# The axes of a leaderboard row: the dataset, then the combination's.
AXES: tuple[str, ...] = ("dataset", *COMBINATION_AXES)
TABLE_AXES = AXES[:2]  # a leaderboard has one table per dataset and task...
ROW_AXES = AXES[2:]  # ...whose rows differ in the other axes


def row_label(row: Any) -> str:
    """A leaderboard row (or record) named within its table: `representation / perturbation / model`."""
    get = row.__getitem__ if hasattr(row, "__getitem__") else lambda a: getattr(row, a)
    return " / ".join(str(get(a)) for a in ROW_AXES)


@dataclass(frozen=True)
class EntryRef:
    """Which entry of one axis made a number, as the record keeps it.

    `name`, `params` and `version` are what the study's key hashes (its identity);
    `title` is what tables show; `label` a name the entry declares for papers and
    figures (`Entry.paper_label()`, e.g. a perturbation's φ2), "" where it declares none.
    `name` is "" for results older than identities."""

    name: str
    params: dict[str, Any]
    version: str
    title: str
    label: str = ""


@dataclass
class UnitResult:
    """One finished study: the test score of its best trial, and how it was obtained."""

    unit: str  # dataset:task/representation/perturbation/model#seed
    key: str  # the study's identity (harness.plan.identity)
    dataset: str  # the axes' display titles (columns of the store); entry(axis) for fields
    task: str
    representation: str
    perturbation: str
    model: str
    seed: int
    metric: str
    value: float
    extra: dict[str, float] = field(default_factory=dict)
    valid_value: float = float("nan")
    n_train: int = 0
    n_valid: int = 0
    n_test: int = 0
    n_trials: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    fit_seconds: float = 0.0
    device: str = "cpu"
    finished: float = field(default_factory=time.time)
    superseded: bool = False
    # What the key hashes: per axis {"name", "params", "version", "code"}, the split, seed...
    identity: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)  # libraries, device, commit
    # Test predictions: {"ids": [...], "y": [...], "proba": [[...], ...]} (one column per class)
    predictions: dict[str, Any] | None = None
    # Extra test sets (held-out families, evaluate datasets): name -> {"value", "extra",
    # "n", "predictions"}, written by `harness.execute.study.score_set`
    evaluations: dict[str, Any] = field(default_factory=dict)
    # metric name -> higher_is_better, for the task's metrics: leaderboards rank by it
    # without loading the plugin that registered the metric (older rows: {} -> registry)
    directions: dict[str, bool] = field(default_factory=dict)
    # axis -> the paper label its entry declares (only axes whose entry declares one;
    # older rows: {})
    labels: dict[str, str] = field(default_factory=dict)
    # learning curves: the dataset label of the curve a fraction's study belongs to ("" for
    # a study on the whole training split; older rows: "", see `curve_dataset`)
    curve: str = ""

    @property
    def train_fraction(self) -> float:
        """The share of the training split this study trained on (1.0: all of it)."""
        return float((self.identity or {}).get("train_fraction") or 1.0)

    @property
    def curve_dataset(self) -> str:
        """The dataset label this study's learning curve is tabled under."""
        if self.curve:
            return self.curve
        if self.train_fraction < 1 and FRACTION_MARK in self.dataset:  # rows written before `curve`
            return self.dataset.rsplit(FRACTION_MARK, 1)[0]
        return self.dataset

    def entry(self, axis: str) -> EntryRef:
        """The structured reference of one axis's entry (`AXES`), from the identity the
        study recorded; an older result without one gives name "" and its title only."""
        if axis not in AXES:
            raise KeyError(f"{axis!r} is not an axis; axes: {', '.join(AXES)}")
        found = (self.identity or {}).get(axis)
        title = str(getattr(self, axis))
        label = (self.labels or {}).get(axis, "")
        if not isinstance(found, dict) or not isinstance(found.get("name"), str):
            return EntryRef("", {}, "", title, label)
        params = found.get("params")
        return EntryRef(
            found["name"], dict(params) if isinstance(params, dict) else {}, str(found.get("version", "")), title, label
        )

    def higher_is_better(self, metric: str | None = None) -> bool | None:
        """The direction of `metric` (default: the study's own) as the study wrote it;
        None for results written before directions were."""
        return (self.directions or {}).get(metric or self.metric)

    @property
    def combination_id(self) -> str:
        """`task/representation/perturbation/model`, as tables and --only patterns name it."""
        return "/".join(str(getattr(self, a)) for a in COMBINATION_AXES)

    @property
    def row_key(self) -> tuple[str, ...]:
        """The leaderboard row it counts in: its title on every axis (`AXES`)."""
        return tuple(str(getattr(self, a)) for a in AXES)


def paper_label(entry: Any) -> str:
    """The label an entry declares for papers and figures (`Entry.paper_label()`), "" for
    none or for an entry class that predates the method."""
    method = getattr(entry, "paper_label", None)
    label = method() if callable(method) else ""
    return label if isinstance(label, str) else ""
