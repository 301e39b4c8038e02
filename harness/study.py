"""What one unit of work does: an Optuna study for one (combination, seed).

Units are independent; `harness.executors` decides where they run.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import pickle
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness import metrics
from harness.api import FitContext, Perturbation, Samples
from harness.features import FeatureSet
from harness.grid import Combination
from harness.splits import Split
from harness.store import UnitResult


@dataclass
class Unit:
    combination: Combination
    seed: int
    fingerprint: str
    trials: int
    timeout: float | None
    device: str
    threads: int
    storage: str  # Optuna journal file shared by all units of a results folder
    models_dir: str
    dataset: str = ""  # the dataset's label in the config

    @property
    def id(self) -> str:
        return f"{self.dataset}:{self.combination.id}#{self.seed}"

    @property
    def data_key(self) -> str:
        """Units sharing this key see the same features, labels and split."""
        c = self.combination
        return f"{self.dataset}|{c.task.title}|{c.representation.title}|{self.seed}"


@dataclass
class UnitData:
    """The labelled materials of the unit's task, split for its seed, with features."""

    features: FeatureSet
    index: np.ndarray  # positions in the feature set of the task's labelled materials
    y: np.ndarray  # labels of those materials
    ids: list[str]
    split: Split  # positions into `index`


def stable_seed(*parts: Any) -> int:
    """A seed derived from names and numbers, the same in every process and Python run."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


def _perturb(
    xs: list[np.ndarray], positions: np.ndarray, perts: list[Perturbation], seed: int, columns: list[str]
) -> list[np.ndarray]:
    """Each sample gets its own generator from (seed, perturbation, sample): reproducible and
    independent of which split the sample falls in."""
    out = []
    for x, pos in zip(xs, positions):
        for p in perts:
            rng = np.random.default_rng([seed, stable_seed(p.title), int(pos)])
            x = p.apply(x, rng, columns)
        out.append(np.asarray(x, dtype=np.float32))
    return out


def _samples(unit: Unit, data: UnitData, part: np.ndarray, training: bool) -> Samples:
    combo = unit.combination
    feats = data.features
    positions = data.index[part]
    keep = np.array([feats.features[p] is not None for p in positions], dtype=bool)
    part, positions = part[keep], positions[keep]
    perts = [p for p in (*combo.transforms, combo.perturbation) if training or not p.training_only]
    xs = _perturb([feats.features[p] for p in positions], positions, perts, unit.seed, feats.columns)
    X: list[np.ndarray] | np.ndarray = np.stack(xs) if feats.kind == "vector" and xs else xs
    return Samples(X, data.y[part], [data.ids[i] for i in part], feats.columns, feats.kind)


def run_unit(unit: Unit, data: UnitData) -> UnitResult:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    logging.getLogger("optuna").setLevel(logging.WARNING)
    combo = unit.combination
    task = combo.task
    score = metrics.get(task.metric)
    train = _samples(unit, data, data.split.train, training=True)
    valid = _samples(unit, data, data.split.valid, training=False)
    test = _samples(unit, data, data.split.test, training=False)
    n_classes = len(task.classes)

    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(unit.storage))
    study = optuna.create_study(
        study_name=f"{unit.id}@{unit.fingerprint}",
        storage=storage,
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=stable_seed(unit.id)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
        load_if_exists=True,
    )
    best: dict[str, Any] = {}
    fit_seconds: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        model = copy.deepcopy(combo.model)
        params = model.search_space(trial) if model.tune else {}
        for earlier in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if earlier.params == trial.params and earlier.number != trial.number:
                # A small or narrowed space repeats itself: same params, same seed, same
                # model, so the earlier value stands and nothing is refitted.
                trial.set_user_attr("repeat_of", earlier.number)
                return float(earlier.value)

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        ctx = FitContext(unit.device, unit.seed, n_classes, score, report, unit.threads)
        t0 = time.perf_counter()
        model.fit(train, valid, params, ctx)
        fit_seconds.append(time.perf_counter() - t0)
        value = score(valid.y, model.predict_proba(valid.X))
        if not best or value > best["value"]:
            best.update(value=value, number=trial.number, model=model)
        return value

    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    remaining = max(0, (unit.trials if combo.model.tune else 1) - len(finished))
    if remaining:
        study.optimize(objective, n_trials=remaining, timeout=unit.timeout, catch=())
    trial = study.best_trial
    if best.get("number") in (trial.number, trial.user_attrs.get("repeat_of")):
        model = best["model"]
    else:  # the best trial ran in an earlier, interrupted run: refit it (same seed, same model)
        model = copy.deepcopy(combo.model)
        ctx = FitContext(unit.device, unit.seed, n_classes, score, lambda s, v: None, unit.threads)
        model.fit(train, valid, dict(trial.params), ctx)
    proba = model.predict_proba(test.X)
    value = score(test.y, proba)
    extra = {name: metrics.get(name)(test.y, proba) for name in task.extra_metrics}
    _save_model(unit, model)
    return UnitResult(
        unit=unit.id,
        fingerprint=unit.fingerprint,
        dataset=unit.dataset,
        task=task.title,
        representation=combo.representation.title,
        perturbation=combo.perturbation.title,
        model=combo.model.title,
        seed=unit.seed,
        metric=task.metric,
        value=value,
        extra=extra,
        valid_value=float(trial.value),
        n_train=len(train),
        n_valid=len(valid),
        n_test=len(test),
        n_trials=len(study.trials),
        params=dict(trial.params),
        fit_seconds=float(np.mean(fit_seconds)) if fit_seconds else 0.0,
        device=unit.device,
        key=hashlib.blake2b(f"{unit.id}@{unit.fingerprint}".encode(), digest_size=8).hexdigest(),
        predictions={"ids": list(test.ids), "y": np.asarray(test.y).astype(int).tolist(),
                     "proba": np.asarray(proba, dtype=float).tolist()},
    )


def model_path(models_dir: str | Path, unit_id: str) -> Path:
    digest = hashlib.blake2b(unit_id.encode(), digest_size=8).hexdigest()
    return Path(models_dir) / f"{digest}.pkl"


def _save_model(unit: Unit, model: Any) -> None:
    path = model_path(unit.models_dir, unit.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump({"unit": unit.id, "model": model}, f)
    tmp.replace(path)
