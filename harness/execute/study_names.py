"""Optuna studies that people can read: named after their combination and seed, with the
task, dataset, entries and key as study user attributes (what optuna-dashboard lists).

The name keeps the first 8 characters of the study's key, so two studies of one
combination and seed with different settings (trials, split, code) never share trials.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import optuna


class StudySpec(Protocol):
    """What naming needs of a study (harness.execute.study.StudySpec has it)."""

    key: str
    unit: str
    dataset: str
    seed: int
    trials: int
    combination: Any


def study_name(spec: StudySpec) -> str:
    """ "<dataset>:<task>/<representation>/<perturbation>/<model> seed=<s> [<key[:8]>]"."""
    return f"{spec.dataset}:{spec.combination.id} seed={spec.seed} [{spec.key[:8]}]"


def name_for(spec: StudySpec, storage: Any) -> str:
    """The readable name, or the bare key for a study an older harness began under it (its
    trials resume there)."""
    try:
        storage.get_study_id_from_name(spec.key)
    except KeyError:
        return study_name(spec)
    return spec.key


def attributes(spec: StudySpec) -> dict[str, Any]:
    combo = spec.combination
    return {
        "key": spec.key,
        "unit": spec.unit,
        "dataset": spec.dataset,
        "seed": spec.seed,
        "combination": combo.id,
        "task": combo.task.title,
        "representation": combo.representation.title,
        "perturbation": combo.perturbation.title,
        "model": combo.model.title,
        "transforms": [t.title for t in combo.transforms],
        "trials": spec.trials,
    }


def describe(study: optuna.Study, spec: StudySpec) -> None:
    """Set the attributes once (a resumed study already has them)."""
    have = study.user_attrs
    for name, value in attributes(spec).items():
        if have.get(name) != value:
            study.set_user_attr(name, value)
