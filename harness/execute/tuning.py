"""The model contract's core side: search spaces as data, trial models, class columns,
fitted models stored as data.

A model declares `search_space` (field -> `Choice` or `Range`); the TOML may override
dimensions through `space`. The core validates the result when the grid is expanded,
samples it with Optuna and builds each trial's model with `dataclasses.replace`, so no
model sees an Optuna `Trial`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from harness.sdk.api import Choice, Dimension, Model
from harness.services.errors import UserError
from harness.plan.space import search_space

if TYPE_CHECKING:  # pragma: no cover
    from pathlib import Path

    import optuna

    from harness.services.registry import Registry


def sample(trial: "optuna.Trial", space: Mapping[str, Dimension]) -> dict[str, Any]:
    """One point of the space, drawn by the trial (its params are the field values)."""
    out: dict[str, Any] = {}
    for name, dim in space.items():
        if isinstance(dim, Choice):
            out[name] = trial.suggest_categorical(name, list(dim.values))
        elif dim.integer:
            out[name] = trial.suggest_int(name, int(dim.low), int(dim.high), log=dim.log)
        else:
            out[name] = trial.suggest_float(name, float(dim.low), float(dim.high), log=dim.log)
    return out


def build(model: Model, params: Mapping[str, Any]) -> Model:
    """A fresh, unfitted copy of `model` with `params` set on its fields."""
    return dataclasses.replace(model, **dict(params))


def trial_model(model: Model, trial: "optuna.Trial") -> Model:
    """The model the trial asks for: sampled when the model is tuned, else as configured."""
    return build(model, sample(trial, search_space(model)) if model.tune else {})


class BadProbabilities(ValueError):
    """A model returned probabilities that cannot be scored (non-finite, wrongly shaped):
    the trial fails; nothing computed from them is ranked."""


def class_probabilities(model: Model, X: Any, n_classes: int) -> np.ndarray:
    """(n, n_classes) probabilities: the model's columns placed at its `classes_`, zeros
    for classes it never saw in training. Non-finite or wrongly shaped output is a
    `BadProbabilities` naming the model, never a score."""
    try:
        proba = np.asarray(model.predict_proba(X), dtype=np.float64)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, BadProbabilities):
            raise
        raise BadProbabilities(f"model {model.name!r} returned probabilities that are not numbers ({exc})") from None
    try:
        n = len(X)
    except TypeError:  # inputs without a length (a model's own data object): rows unchecked
        n = proba.shape[0] if proba.ndim else 0
    if proba.ndim not in (1, 2) or proba.shape[0] != n:
        raise BadProbabilities(
            f"model {model.name!r} returned probabilities of shape {proba.shape} "
            f"for {n} samples; give one row per sample"
        )
    if not np.isfinite(proba).all():
        bad = int((~np.isfinite(proba)).any(axis=tuple(range(1, proba.ndim))).sum())
        raise BadProbabilities(
            f"model {model.name!r} returned non-finite probabilities (NaN or inf) for {bad} of {n} samples"
        )
    classes = getattr(model, "classes_", None)
    if classes is None:
        if proba.ndim != 2 or proba.shape[1] != n_classes:
            raise BadProbabilities(
                f"model {model.name!r} returned probabilities of shape {proba.shape}; without `classes_` "
                f"it must return one column per class of the task ({n_classes})"
            )
        return proba
    classes = np.asarray(classes, dtype=int)
    if proba.ndim == 1:  # a binary model's P(classes_[1])
        proba = np.stack([1 - proba, proba], axis=1)
    if proba.shape[1] != len(classes):
        raise BadProbabilities(f"model {model.name!r} returned {proba.shape[1]} columns for {len(classes)} classes_")
    out = np.zeros((proba.shape[0], n_classes))
    out[:, classes] = proba
    return out


# --------------------------------------------------------------------------- fitted models as data

MODEL_FILE = "model.json"


def save_fitted(model: Model, folder: "Path") -> None:
    """A fitted model as data: its name and hyperparameters (JSON) beside the state its
    `save` writes into `folder/state`. Nothing in the folder is code."""
    import json
    from pathlib import Path

    folder = Path(folder)
    (folder / "state").mkdir(parents=True, exist_ok=True)
    model.save(folder / "state")
    secrets = set(model.secrets())
    params = {k: getattr(model, k) for k in model.hyperparameters() if k not in secrets}
    (folder / MODEL_FILE).write_text(json.dumps({"name": model.name, "params": params}, sort_keys=True))


def load_fitted(registry: "Registry", folder: "Path", label: str | None = None) -> Model:
    """The model `save_fitted` wrote, rebuilt from the registry (the plugin's own class)
    and its `load`; a folder it did not write is a `UserError`. `label` names the model in
    messages when `folder` is a temporary one (it is gone when the message is read)."""
    import json
    from pathlib import Path

    folder = Path(folder)
    what = label or str(folder)
    try:
        entry = json.loads((folder / MODEL_FILE).read_text())
        name, params = entry["name"], entry["params"]
        if not isinstance(name, str) or not isinstance(params, dict):
            raise TypeError("name must be a string and params a table")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        cause = str(exc).replace(str(folder), "<model>") if label else str(exc)
        raise UserError(
            f"{what} holds no saved model ({MODEL_FILE}: {type(exc).__name__}: {cause}); rerun the study to write it"
        ) from None
    model = registry.create("model", name, params, where=f"{what}, {MODEL_FILE}: ")
    if not isinstance(model, Model):
        raise UserError(f"{what}: {name!r} is not a model")
    try:
        return model.load(folder / "state")
    except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
        cause = str(exc).replace(str(folder), "<model>") if label else str(exc)
        raise UserError(
            f"{what}: model {name!r} cannot read its saved state ({type(exc).__name__}: {cause}); "
            "rerun the study to write it"
        ) from None
