"""What one study does: tune one (combination, seed) with Optuna, refit the best trial,
score it once on the test split, and return the result with its test predictions.

A study is identified by its key (`harness.plan.identity`); its trials live in the store's
Optuna storage under that key, so a study cut anywhere resumes where it stopped and,
with `ReplayableTPESampler`, tunes exactly as an uncut one. Executors decide where a study
runs; this module only needs the spec, the store URL and the inputs file.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import warnings
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np

from harness.prepare import fractions

from harness.execute import persist, study_names, tuning
from harness.sdk.api import FitContext, Perturbation, Samples
from harness.plan.grid import Combination
from harness.plan.identity import seed_key
from harness.prepare.inputs import StudyInputs, read_inputs
from harness.plan.spec import StudySpec
from harness.services.records import COMBINATION_AXES, UnitResult, paper_label

log = logging.getLogger("harness")


class StudyTimeout(Exception):
    """The study's `timeout` struck while a trial was fitting: that trial fails."""


class NoValidTrial(RuntimeError):
    """Every trial of a study failed (bad probabilities, timeout): nothing to rank."""


@dataclass
class Environment:
    """Where a study runs: the store it writes trials to, the device, its thread budget."""

    store_url: str
    device: str = "cpu"
    threads: int = 1
    versions: dict[str, str] = field(default_factory=dict)
    store_models: bool = True  # False: the fitted model is not kept ([run] store_models = "none")


@dataclass
class StudyOutcome:
    result: UnitResult
    model: tuple[str, bytes] | None  # (format, bytes) in a format that carries no code


def stable_seed(*parts: Any) -> int:
    """A seed derived from names and numbers, the same in every process and Python run."""
    return zlib.crc32("|".join(map(str, parts)).encode()) & 0x7FFFFFFF


def perturb(
    xs: list[np.ndarray], positions: np.ndarray, perts: list[Perturbation], seed: int, columns: list[str]
) -> list[np.ndarray]:
    """Each sample gets its own generator from (seed, perturbation, sample): reproducible and
    independent of which split the sample falls in."""
    streams = [stable_seed(p.title) for p in perts]
    out = []
    for x, pos in zip(xs, positions):
        for p, stream in zip(perts, streams):
            rng = np.random.default_rng([seed, stream, int(pos)])
            x = p.apply(x, rng, columns)
        out.append(np.array(x, dtype=np.float32))  # a copy: models may write into their inputs
    return out


def samples(combo: Combination, seed: int, data: StudyInputs, part: np.ndarray, training: bool) -> Samples:
    """One split as the model sees it: perturbed, training-only augmentations on training only."""
    perts = [p for p in (*combo.transforms, combo.perturbation) if (training or not p.training_only) and not p.identity]
    xs = perturb([data.X[i] for i in part], data.positions[part], perts, seed, data.columns)
    X: list[np.ndarray] | np.ndarray = np.stack(xs) if data.kind == "vector" and xs else xs
    return Samples(X, data.y[part], [data.ids[i] for i in part], data.columns, data.kind)


def run_study(spec: StudySpec, env: Environment) -> StudyOutcome:
    """Tune, refit the best trial, score it on the test split; library warnings become
    one summary line, a failed trial one line (no Optuna traceback)."""
    import optuna

    # Optuna would log a traceback per failed trial: the study logs one line instead.
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("optuna").setLevel(logging.ERROR)
    with warnings.catch_warnings(record=True) as caught:  # libraries' warnings: one summary line
        warnings.simplefilter("always")  # counted, not once per place; what Python hides stays hidden
        for hidden in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", hidden)
        outcome = _run_study(spec, env)
    _summarise_warnings(spec, caught)
    return outcome


def run_studies(specs: list[StudySpec], env: Environment) -> list[StudyOutcome | BaseException]:
    """Studies of one combination (its seeds) in lockstep, trial t of each fitted together:
    the fits whose trials drew the same parameters go to the model's `fit_many` as one
    batched fit. A trial's parameters depend only on its own study's finished trials
    (`ReplayableTPESampler`), so each study tunes exactly as alone; with `batch_studies` a
    fit's numbers do not depend on its batch-mates, so each result is the one its study
    gives alone, and a pack cut anywhere resumes as any study does (its trials are in the
    store). One outcome (or the exception that ended it) per spec, in order."""
    if len(specs) == 1:
        try:
            return [run_study(specs[0], env)]
        except Exception as exc:  # noqa: BLE001 - reported by the runner
            return [exc]
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("optuna").setLevel(logging.ERROR)
    out: list[StudyOutcome | BaseException | None] = [None] * len(specs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for hidden in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
            warnings.simplefilter("ignore", hidden)
        states: dict[int, _Open] = {}
        for i, spec in enumerate(specs):
            try:
                states[i] = _open(spec, env)
            except Exception as exc:  # noqa: BLE001 - this study fails, its pack-mates go on
                out[i] = exc
        while any(s.remaining > 0 for s in states.values()):
            for i, exc in _lockstep_trials({i: s for i, s in states.items() if s.remaining > 0}, env).items():
                out[i] = exc
                del states[i]
        for i, state in states.items():
            try:
                out[i] = _finish(state, env)
            except Exception as exc:  # noqa: BLE001
                out[i] = exc
    _summarise_warnings(specs[0], caught)
    return out  # type: ignore[return-value]


def _lockstep_trials(states: dict[int, _Open], env: Environment) -> dict[int, BaseException]:
    """The next trial of every study in `states`, those with equal parameters fitted as one
    `fit_many`; returns the studies that failed (an exception a lone study would raise)."""
    import optuna
    from optuna.trial import TrialState

    groups: dict[str, list[tuple[int, Any, Any]]] = {}
    for i, state in states.items():
        trial = state.study.ask()
        state.remaining -= 1
        model = tuning.trial_model(state.spec.combination.model, trial)
        if (value := state.repeat(trial)) is not None:
            state.study.tell(trial, value)
            continue
        groups.setdefault(repr(sorted(model.params().items())), []).append((i, trial, model))
    failed: dict[int, BaseException] = {}
    for group in groups.values():
        fits = []
        for i, trial, _ in group:

            def report(step: int, value: float, trial: Any = trial) -> None:
                trial.report(value, step)
                if trial.should_prune():
                    raise optuna.TrialPruned()

            fits.append((states[i].train, states[i].valid, states[i].context(env, report)))
        t0 = time.perf_counter()
        try:
            models = _fit_together(group[0][2], fits)
        except Exception as exc:  # noqa: BLE001 - as a lone study: its trial fails, the study stops
            for i, trial, _ in group:
                _tell_failed(states[i].study, trial)
                failed[i] = exc
            continue
        seconds = time.perf_counter() - t0
        for (i, trial, _), model in zip(group, models):
            state = states[i]
            if isinstance(model, optuna.TrialPruned):
                state.study.tell(trial, state=TrialState.PRUNED)
            elif isinstance(model, BaseException):
                _tell_failed(state.study, trial)
                failed[i] = model
            else:
                try:
                    state.study.tell(trial, state.scored(trial, model, seconds))
                except tuning.BadProbabilities as exc:
                    state.failed(trial, exc)
                    _tell_failed(state.study, trial)
    return failed


def _tell_failed(study: Any, trial: Any) -> None:
    from optuna.trial import TrialState

    study.tell(trial, state=TrialState.FAIL)


def _fit_together(model: Any, fits: list) -> list:
    """`model.fit_many(fits)` where the model has it (a batched engine), else one by one;
    a fit that raised (pruning) gives its exception in its place."""
    if hasattr(model, "fit_many"):
        return list(model.fit_many(fits))
    out: list = []
    for train, valid, ctx in fits:
        one = tuning.build(model, {})
        try:
            out.append(one.fit(train, valid, ctx))
        except Exception as exc:  # noqa: BLE001 - pruning, handed back as fit_many does
            if type(exc).__name__ != "TrialPruned":
                raise
            out.append(exc)
    return out


def _summarise_warnings(spec: StudySpec, caught: list) -> None:
    if not caught:
        return
    kinds: dict[str, int] = {}
    for w in caught:
        text = f"{w.category.__name__}: {str(w.message).strip().splitlines()[0] if str(w.message).strip() else ''}"
        kinds[text] = kinds.get(text, 0) + 1
    first = max(kinds, key=lambda k: kinds[k])
    log.info(
        "%s: %d warnings from the model's libraries (%d kinds; most frequent, %d times: %s)",
        spec.unit,
        len(caught),
        len(kinds),
        kinds[first],
        first[:200],
    )


@dataclass
class _Open:
    """One study between its setup and its result: its splits as the model sees them, its
    Optuna study, and what this process fitted (the best trial's model, fit times)."""

    spec: StudySpec
    data: StudyInputs
    train: Samples
    valid: Samples
    test: Samples
    n_classes: int
    study: Any
    remaining: int
    fitted: dict[int, tuple[float, Any]] = field(default_factory=dict)  # best trial: number -> (value, model)
    fit_seconds: list[float] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    @property
    def score(self) -> Any:  # signed: higher is better for Optuna and early stopping
        return self.spec.combination.metrics[0].objective

    def context(self, env: Environment, report: Any) -> FitContext:
        return FitContext(
            env.device, self.spec.seed, self.n_classes, self.score, report, self.spec.threads or env.threads or 1
        )

    def repeat(self, trial: Any) -> float | None:
        """A small or narrowed space repeats itself: same params, same seed, same model, so
        the earlier value stands and nothing is refitted."""
        import optuna

        for earlier in self.study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
            if earlier.params == trial.params and earlier.number != trial.number:
                trial.set_user_attr("repeat_of", earlier.user_attrs.get("repeat_of", earlier.number))
                return float(earlier.value)
        return None

    def failed(self, trial: Any, exc: BaseException) -> None:
        self.reasons.append(str(exc))
        if str(exc) not in self.reasons[:-1]:  # one line per distinct cause, not per trial
            log.warning("%s: trial %d failed: %s", self.spec.unit, trial.number, exc)

    def scored(self, trial: Any, model: Any, seconds: float) -> float:
        """The fitted trial's validation value; the best fitted model is kept in memory."""
        proba = tuning.class_probabilities(model, self.valid.X, self.n_classes)
        self.fit_seconds.append(seconds)
        value = self.score(self.valid.y, proba)
        if not self.fitted or value > next(iter(self.fitted.values()))[0]:  # keep only the best
            self.fitted.clear()
            self.fitted[trial.number] = (value, model)
        return value


def _open(spec: StudySpec, env: Environment) -> _Open:
    import optuna

    from harness.execute.sampling import FINISHED, ReplayableTPESampler, fail_orphaned_trials
    from harness.services.store import Store

    combo = spec.combination
    data = read_inputs(spec.inputs)
    split = fractions.nested_split(data.splits[spec.seed], data.y, spec.train_fraction, spec.seed)
    train = samples(combo, spec.seed, data, split.train, training=True)
    valid = samples(combo, spec.seed, data, split.valid, training=False)
    test = samples(combo, spec.seed, data, split.test, training=False)

    storage = Store(env.store_url).optuna_storage(prepared=True)  # the run set up its tables
    study = optuna.create_study(
        study_name=study_names.name_for(spec, storage),  # readable in optuna-dashboard
        storage=storage,
        direction="maximize",
        sampler=ReplayableTPESampler(seed=stable_seed(seed_key(spec.identity) if spec.identity else spec.key)),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=2),
        load_if_exists=True,
    )
    study_names.describe(study, spec)
    fail_orphaned_trials(study, storage)  # we hold the claim: RUNNING trials belong to a dead process
    wanted = spec.trials if combo.model.tune else 1
    remaining = wanted - len(study.get_trials(deepcopy=False, states=FINISHED))
    return _Open(spec, data, train, valid, test, len(combo.task.classes), study, remaining)


def _run_study(spec: StudySpec, env: Environment) -> StudyOutcome:
    import optuna

    state = _open(spec, env)
    clock = _Deadline(spec.timeout)

    def objective(trial: optuna.Trial) -> float:
        model = tuning.trial_model(spec.combination.model, trial)
        if (value := state.repeat(trial)) is not None:
            return value

        def report(step: int, value: float) -> None:
            trial.report(value, step)
            if trial.should_prune():
                raise optuna.TrialPruned()

        t0 = time.perf_counter()
        try:
            with clock.fitting():
                model.fit(state.train, state.valid, state.context(env, report))
                return state.scored(trial, model, time.perf_counter() - t0)
        except (tuning.BadProbabilities, StudyTimeout) as exc:
            state.failed(trial, exc)
            raise

    if state.remaining > 0:
        with clock:
            state.study.optimize(
                objective, n_trials=state.remaining, timeout=spec.timeout, catch=(tuning.BadProbabilities, StudyTimeout)
            )
    return _finish(state, env)


def _finish(state: _Open, env: Environment) -> StudyOutcome:
    from harness.execute.sampling import FINISHED

    spec, study = state.spec, state.study
    combo, task = spec.combination, spec.combination.task
    metric, n_classes, data, train, valid, test = (
        combo.metrics[0],
        state.n_classes,
        state.data,
        state.train,
        state.valid,
        state.test,
    )
    best = best_trial(study)
    if best is None:
        why = state.reasons[-1] if state.reasons else "no trial finished"
        raise NoValidTrial(f"no valid trial, so the study is not ranked ({why})")
    number = best.user_attrs.get("repeat_of", best.number)
    if number in state.fitted:
        model = state.fitted[number][1]
    else:  # fitted by an earlier, interrupted process (or a later trial replaced it): refit
        model = tuning.build(combo.model, best.params if combo.model.tune else {})
        model.fit(train, valid, state.context(env, lambda s, v: None))
    fit_seconds = state.fit_seconds
    proba = tuning.class_probabilities(model, test.X, n_classes)
    value = metric(test.y, proba)
    extra = {m.name: m(test.y, proba) for m in combo.metrics[1:]}
    evaluations = {
        name: score_set(model, combo, spec.seed, data, where, n_classes) for name, where in data.evaluations.items()
    }
    finished = study.get_trials(deepcopy=False, states=FINISHED)
    result = UnitResult(
        unit=spec.unit,
        key=spec.key,
        dataset=spec.dataset,
        task=task.title,
        representation=combo.representation.title,
        perturbation=combo.perturbation.title,
        model=combo.model.title,
        seed=spec.seed,
        metric=task.metric,
        value=float(value),
        extra=extra,
        valid_value=float(best.value) * (1 if metric.higher_is_better else -1),
        n_train=len(train),
        n_valid=len(valid),
        n_test=len(test),
        n_trials=len(finished),
        params=dict(best.params),
        fit_seconds=float(np.mean(fit_seconds)) if fit_seconds else 0.0,
        device=env.device,
        identity=spec.identity,
        versions=env.versions,
        predictions={"ids": list(test.ids), "y": test.y.tolist(), "proba": proba.tolist()},
        evaluations=evaluations,
        directions={m.name: m.higher_is_better for m in combo.metrics},
        labels={a: lab for a in COMBINATION_AXES if (lab := paper_label(getattr(combo, a)))},
        curve=spec.curve,
    )
    return StudyOutcome(result, persist.dump(model) if env.store_models else None)


def best_trial(study: Any) -> Any:
    """The completed trial with the best value; ties go to the lowest trial number, on
    every store (databases return tied rows in any order)."""
    import optuna

    done = [
        t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)) if t.value is not None
    ]
    if not done:
        return None
    return min(done, key=lambda t: (-t.value, t.number))


class _Deadline:
    """A study's `timeout` as a hard limit: Optuna only checks it between trials, so a
    SIGALRM at the deadline interrupts the fit that is running (`StudyTimeout`), and no
    fit starts after it. Only inside a fit: Optuna's own bookkeeping is never cut.
    Needs the main thread (where the executors run studies); elsewhere Optuna's check
    between trials is all there is."""

    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self.expired = False
        self._in_fit = False
        self._armed = False
        self._old: Any = None

    def __enter__(self) -> Self:
        if self.seconds and hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGALRM, self._fire)
            signal.setitimer(signal.ITIMER_REAL, float(self.seconds))
            self._armed = True
        return self

    def __exit__(self, *exc: object) -> None:
        if self._armed:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self._old)
            self._armed = False

    def _fire(self, signum: int, frame: Any) -> None:
        self.expired = True
        if self._in_fit:
            self._in_fit = False
            raise StudyTimeout(f"the study's timeout of {self.seconds:g} s struck during this fit; stopped")

    @contextmanager
    def fitting(self):
        if self.expired:
            raise StudyTimeout(f"the study's timeout of {self.seconds:g} s had passed; not started")
        self._in_fit = True
        try:
            yield
        finally:
            self._in_fit = False


def score_set(
    model: Any, combo: Combination, seed: int, data: StudyInputs, where: np.ndarray, n_classes: int
) -> dict[str, Any]:
    """The fitted model on an extra test set (a held-out family, an evaluate dataset):
    every metric of the task, and the predictions. A metric the set cannot define (ROC-AUC
    on one class) is NaN, never an error: the predictions still tell the story."""
    part = samples(combo, seed, data, where, training=False)
    proba = tuning.class_probabilities(model, part.X, n_classes) if len(part) else np.zeros((0, n_classes))
    values = {m.name: _defined(m, part.y, proba) for m in combo.metrics}
    return {
        "value": values[combo.metrics[0].name],
        "extra": {k: v for k, v in values.items() if k != combo.metrics[0].name},
        "n": len(part),
        "predictions": {"ids": list(part.ids), "y": part.y.tolist(), "proba": proba.tolist()},
    }


def _defined(metric: Any, y: np.ndarray, proba: np.ndarray) -> float:
    if len(y) == 0:
        return float("nan")
    try:
        return float(metric(y, proba))
    except ValueError:  # e.g. a single class present
        return float("nan")
