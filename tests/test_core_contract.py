"""The model contract's core side (search spaces as data, trial models, class columns)
and what the grid checks of the plugins' declarations, on toy entries only."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import optuna
import pytest
import toy_plugin

from harness import (
    CLOUD,
    VECTOR,
    Choice,
    Metric,
    Model,
    Perturbation,
    Range,
    Representation,
    Task,
    UserError,
    hookimpl,
    secret,
)
from harness.services import config, registry
from harness.execute import tuning
from harness.sdk.api import FitContext, Samples
from harness.plan.grid import expand, resolve

BASE = {
    "plugins": ["toy_plugin"],
    "tasks": ["toy_system"],
    "representations": ["ratios"],
    "perturbations": ["identity"],
    "models": ["centroids"],
    "dataset": {"name": "toy"},
}


class Hooks:
    def __init__(self, **hooks):
        self.__name__ = "mock"
        for hook, fn in hooks.items():
            setattr(self, hook, hookimpl(fn))


def toy_registry(*plugins):
    return registry.load([toy_plugin, *plugins], entry_points=False)


def grid_of(*plugins, **conf):
    return expand(config.parse({**BASE, **conf}), toy_registry(*plugins))


def centroids(**settings):
    (combo,) = grid_of(settings={"centroids": settings}).combinations
    return combo.model


# ------------------------------------------------------------------ search spaces


def test_declared_space_is_sampled_into_fields_and_no_trial_reaches_the_model():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    model = tuning.trial_model(centroids(), trial)
    assert set(trial.params) == {"temperature", "standardize"}
    assert model.temperature == trial.params["temperature"] and 0.01 <= model.temperature <= 10
    assert model.standardize == trial.params["standardize"]


def test_the_same_seed_samples_the_same_models():
    def draw():
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=7))
        return [tuning.trial_model(centroids(), study.ask()).temperature for _ in range(5)]

    assert draw() == draw()


def test_toml_overrides_narrow_replace_fix_and_add_dimensions():
    model = centroids(space={"temperature": {"low": 1, "high": 4}, "standardize": [False], "pool": "mean"})
    space = tuning.search_space(model)
    assert space == {"temperature": Range(1, 4), "standardize": Choice(False), "pool": Choice("mean")}
    assert space["temperature"].integer
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1)).ask()
    m = tuning.trial_model(model, trial)
    assert m.temperature in (1, 2, 3, 4) and m.standardize is False and m.pool == "mean"


def test_an_untuned_model_keeps_its_fields():
    model = centroids(tune=False, temperature=0.5)
    trial = optuna.create_study().ask()
    assert tuning.trial_model(model, trial).temperature == 0.5 and trial.params == {}


@pytest.mark.parametrize(
    "space, message",
    [
        (
            {"temprature": [1.0]},
            r"space names 'temprature', which is not a hyperparameter; valid: temperature, standardize, pool",
        ),
        ({"tune": [False]}, "not a hyperparameter"),
        ({"standardize": ["maybe"]}, r"space.standardize: 'maybe' is not a valid value"),
        ({"temperature": {"low": 2, "high": 1}}, "low <= high"),
        ({"temperature": {"low": 0, "high": 1, "log": True}}, "log Range needs low > 0"),
        ({"temperature": {"lo": 0, "high": 1}}, "a range is"),
        ({"temperature": []}, "is empty"),
    ],
)
def test_bad_space_overrides_fail_when_the_grid_is_built(space, message):
    with pytest.raises(UserError, match=message):
        grid_of(settings={"centroids": {"space": space}})


# ------------------------------------------------------------------ class columns


class Fixed(Model):
    def __init__(self, proba, classes=None):
        self.proba = np.asarray(proba)
        if classes is not None:
            self.classes_ = np.asarray(classes)

    name = "fixed"

    def predict_proba(self, X):
        return self.proba


def test_the_core_pads_columns_for_classes_absent_from_training():
    padded = tuning.class_probabilities(Fixed([[0.25, 0.75]], classes=[0, 2]), None, 4)
    np.testing.assert_array_equal(padded, [[0.25, 0, 0.75, 0]])
    binary = tuning.class_probabilities(Fixed([0.9], classes=[0, 1]), None, 2)
    np.testing.assert_allclose(binary, [[0.1, 0.9]])
    full = tuning.class_probabilities(Fixed([[0.5, 0.5, 0.0]]), None, 3)
    np.testing.assert_array_equal(full, [[0.5, 0.5, 0.0]])
    with pytest.raises(ValueError, match="one column per class of the task"):
        tuning.class_probabilities(Fixed([[0.5, 0.5]]), None, 3)


def test_the_mock_model_learns_and_its_padded_probabilities_sum_to_one():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (30, 2)), rng.normal(4, 1, (30, 2))])
    y = np.repeat([0, 2], 30)  # class 1 of three never appears in training
    s = Samples(X, y, [str(i) for i in range(60)], ["a", "b"], VECTOR)
    model = toy_plugin.Centroids().fit(s, s, FitContext("cpu", 0, 3, lambda t, p: 0.0))
    proba = tuning.class_probabilities(model, X, 3)
    assert proba.shape == (60, 3) and np.allclose(proba.sum(axis=1), 1) and (proba[:, 1] == 0).all()
    assert (np.argmax(proba, axis=1) == y).mean() > 0.95


def test_the_mock_model_persists_as_arrays(tmp_path):
    rng = np.random.default_rng(1)
    X = [rng.normal(size=(5, 4)) + k for k in (0, 3) for _ in range(10)]
    s = Samples(X, np.repeat([0, 1], 10), [str(i) for i in range(20)], ["x", "y", "z", "intensity"], CLOUD)
    model = toy_plugin.Centroids(temperature=0.3).fit(s, s, FitContext("cpu", 0, 2, lambda t, p: 0.0))
    model.save(tmp_path)
    restored = toy_plugin.Centroids(temperature=0.3).load(tmp_path)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))


# ------------------------------------------------------------------ declarations checked by the grid


@dataclass
class Wide(Representation):
    """A third-party representation whose parameter happens to share the task's name."""

    name: ClassVar[str] = "wide"
    kind: ClassVar[str] = VECTOR
    scale: float = 7.0

    def columns(self):
        return ["w"]


def test_a_task_preference_applies_only_to_the_representation_it_names():
    grid = grid_of(Hooks(harness_representations=lambda: [Wide]), representations=["ratios", "wide"])
    scales = {c.representation.name: c.representation.scale for c in grid.combinations}
    assert scales == {"ratios": 2.0, "wide": 7.0}
    explicit = grid_of(representations=[{"name": "ratios", "scale": 5.0}])
    assert explicit.combinations[0].representation.scale == 5.0  # the config wins


@dataclass
class Picky(Task):
    name: ClassVar[str] = "picky"
    classes: ClassVar[tuple] = ("a", "b")

    def representation_defaults(self):
        return {"ratios": {"n": 3}}


def test_a_preference_for_a_parameter_the_representation_lacks_is_an_error():
    with pytest.raises(UserError, match=r"task 'picky' prefers 'n' for representation 'ratios'.*it has: scale"):
        grid_of(Hooks(harness_tasks=lambda: [Picky]), tasks=["picky"])


@dataclass
class Brighten(Perturbation):
    name: ClassVar[str] = "brighten"
    needs_columns: ClassVar[dict] = {CLOUD: ("intensity",), VECTOR: ("brightness",)}

    def apply(self, x, rng, columns):
        return x


def test_a_perturbation_is_skipped_where_the_columns_it_needs_are_missing():
    grid = grid_of(
        Hooks(harness_perturbations=lambda: [Brighten]),
        representations=["ratios", "corners"],
        perturbations=["brighten"],
    )
    assert [c.id for c in grid.combinations] == ["toy_system/corners/brighten/centroids"]
    assert grid.skipped == [
        (
            "toy_system/ratios(scale=2)/brighten/centroids",
            "brighten needs column 'brightness', which ratios(scale=2) lacks",
        )
    ]


@dataclass
class Graded(Task):
    name: ClassVar[str] = "graded"
    classes: ClassVar[tuple] = ("a", "b")
    metric: ClassVar[str] = "graded_loss"


def _brier(y, proba):
    return float(((proba[:, 1] - y) ** 2).mean())


def test_a_task_metric_must_be_registered_and_travels_with_the_combination():
    with pytest.raises(UserError, match=r"task 'graded': unknown metric 'graded_loss'; choose one of: accuracy"):
        grid_of(Hooks(harness_tasks=lambda: [Graded]), tasks=["graded"])
    brier = Metric("graded_loss", _brier, higher_is_better=False)
    grid = grid_of(Hooks(harness_tasks=lambda: [Graded], harness_metrics=lambda: [brier]), tasks=["graded"])
    assert grid.combinations[0].metrics == (brier,)
    (toy,) = grid_of().combinations
    assert [m.name for m in toy.metrics] == ["roc_auc", "accuracy"]


def test_defaults_come_from_the_plugins_that_declare_them():
    conf = config.parse({k: v for k, v in BASE.items() if k not in ("dataset", "perturbations")})
    (combo,) = expand(conf, toy_registry()).combinations
    resolved = resolve(conf, toy_registry())  # a new config; the given one stays as it was
    assert resolved.datasets[0].name == "toy" and resolved.datasets[0].label == "toy" and conf.datasets[0].name == ""
    assert combo.perturbation.name == "identity"


def test_without_a_declared_default_the_message_says_what_to_name():
    @dataclass
    class Other(Perturbation):
        name: ClassVar[str] = "other"
        default: ClassVar[bool] = True

    conf = config.parse({k: v for k, v in BASE.items() if k != "perturbations"})
    with pytest.raises(UserError, match="names no perturbation, and several perturbations declare.*identity, other"):
        expand(conf, toy_registry(Hooks(harness_perturbations=lambda: [Other])))
    conf = config.parse({k: v for k, v in BASE.items() if k != "dataset"})
    with pytest.raises(UserError, match="names no dataset, and no plugin offers a default dataset; name one"):
        expand(conf, registry.load(entry_points=False, plugins=[Hooks(harness_tasks=lambda: [toy_plugin.ToySystem])]))


def test_the_dataset_identity_leaves_secrets_out():
    @dataclass
    class Locked(toy_plugin.ToyDataset):
        name: ClassVar[str] = "locked"
        default: ClassVar[bool] = False
        key: str = secret()

    grid = grid_of(Hooks(harness_datasets=lambda: [Locked]), dataset={"name": "locked", "key": "hunter2", "size": 40})
    assert grid.dataset_params == {"size": 40}


# ------------------------------------------------------------------ fitted models as data


def test_a_fitted_model_is_stored_as_json_and_arrays_and_rebuilt_from_the_registry(tmp_path):
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(0, 1, (20, 2)), rng.normal(3, 1, (20, 2))])
    s = Samples(X, np.repeat([0, 1], 20), [str(i) for i in range(40)], ["a", "b"], VECTOR)
    model = centroids(temperature=0.25, standardize=False).fit(s, s, FitContext("cpu", 0, 2, lambda t, p: 0.0))
    tuning.save_fitted(model, tmp_path / "unit")
    files = sorted(p.relative_to(tmp_path).as_posix() for p in (tmp_path / "unit").rglob("*") if p.is_file())
    assert files == ["unit/model.json", "unit/state/centroids.npz"]
    restored = tuning.load_fitted(toy_registry(), tmp_path / "unit")
    assert (restored.temperature, restored.standardize) == (0.25, False)
    np.testing.assert_array_equal(restored.predict_proba(X), model.predict_proba(X))
    with pytest.raises(UserError, match="holds no saved model"):
        tuning.load_fitted(toy_registry(), tmp_path / "elsewhere")
