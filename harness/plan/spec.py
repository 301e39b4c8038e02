"""What the plan hands to later stages for one study: its identity and whereabouts, no data.

It lives with the plan (not with the study code) so that plan and prepare depend only
on earlier stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.plan.grid import Combination

from harness.services.records import FRACTION_MARK as SUFFIX  # learning curves: "<label>@train=<fraction>"


@dataclass(frozen=True)
class StudySpec:
    """Identity and whereabouts of one study: everything a worker needs, no data."""

    key: str
    unit: str  # dataset:task/representation/perturbation/model#seed
    dataset: str
    combination: Combination
    seed: int
    trials: int
    timeout: float | None
    identity: dict[str, Any] = field(default_factory=dict)
    inputs: str = ""  # path of the StudyInputs file: prepare returns a copy with it set
    threads: int = 0  # CPU threads its fits may use, set when handed out (0: the environment's)
    train_fraction: float | None = None  # learning curves: this share of the training split
    curve: str = ""  # learning curves: the dataset label of the curve (set with train_fraction)


def fraction_label(dataset: str, fraction: float | None) -> str:
    """How results at a fraction are tabled: one table per fraction, never mixed with others."""
    return dataset if fraction is None or fraction >= 1 else f"{dataset}{SUFFIX}{fraction:g}"


def study_fraction(fraction: float) -> float | None:
    """The fraction a study records: None for the whole training split."""
    return None if fraction >= 1 else float(fraction)
