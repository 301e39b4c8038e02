"""The TOML config: validation with messages that name the key and the fix."""

import pytest
import toy_plugin

from harness import UserError
from harness.services import config, registry
from harness.plan.grid import expand


def toy_registry():
    """Only the toy plugin: the core's behaviour, independent of the built-in plugins."""
    return registry.load([toy_plugin], entry_points=False)


BASE = {
    "plugins": ["toy_plugin"],
    "tasks": ["toy_system"],
    "representations": [{"name": "ratios", "scale": [1.0, 3.0]}, {"name": "corners"}],
    "perturbations": ["identity"],
    "models": ["vector_centroids"],
    "dataset": {"name": "toy"},
}


def test_list_parameters_expand_and_unfitting_kinds_are_skipped_with_a_reason():
    conf = config.parse(BASE)
    grid = expand(conf, toy_registry())
    ids = [c.id for c in grid.combinations]
    assert ids == [
        "toy_system/ratios/identity/vector_centroids",
        "toy_system/ratios(scale=3)/identity/vector_centroids",
    ]
    assert grid.skipped == [
        ("toy_system/corners/identity/vector_centroids", "vector_centroids takes vector, not cloud")
    ]


def test_task_defaults_fill_unset_representation_parameters_only():
    conf = config.parse({**BASE, "representations": [{"name": "ratios"}]})
    (combo,) = expand(conf, toy_registry()).combinations
    assert combo.representation.scale == 2.0  # ToySystem prefers scale 2


def test_only_selects_combinations_by_glob():
    conf = config.parse(BASE)
    grid = expand(conf, toy_registry(), only=["*/ratios(scale=3)/*"])
    assert [c.representation.title for c in grid.combinations] == ["ratios(scale=3)"]


def test_unknown_key_names_the_key_and_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown key 'run.trails'.*valid keys: .*trials"):
        config.parse({**BASE, "run": {"trails": 3}})


def test_bad_value_names_the_key():
    with pytest.raises(UserError, match="run.device"):
        config.parse({**BASE, "run": {"device": "tpu"}})
    with pytest.raises(UserError, match="add up to 1"):
        config.parse({**BASE, "run": {"split": {"train": 0.9, "valid": 0.15, "test": 0.15}}})


def test_unknown_entry_name_lists_choices():
    conf = config.parse({**BASE, "models": ["centroid"]})
    with pytest.raises(UserError, match="unknown model 'centroid'.*centroids, vector_centroids"):
        expand(conf, toy_registry())


def test_settings_for_an_unknown_model_are_an_error():
    conf = config.parse({**BASE, "settings": {"centroidz": {"temperature": 2}}})
    with pytest.raises(UserError, match="centroidz"):
        expand(conf, toy_registry())


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="cannot read config"):
        config.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("tasks = [")
    with pytest.raises(UserError, match="invalid TOML"):
        config.load(bad)


def test_several_datasets_each_with_their_own_tasks():
    conf = config.parse(
        {
            **{k: v for k, v in BASE.items() if k not in ("dataset", "tasks")},
            "datasets": [
                {"name": "toy", "label": "small", "size": 40, "tasks": ["toy_system"]},
                {"name": "toy", "label": "large", "size": 80, "tasks": "toy_system"},
            ],
        }
    )
    assert [(d.label, d.params, [t.name for t in d.tasks]) for d in conf.datasets] == [
        ("small", {"size": 40}, ["toy_system"]),
        ("large", {"size": 80}, ["toy_system"]),
    ]


def test_dataset_and_datasets_together_or_twice_the_same_label_are_errors():
    with pytest.raises(UserError, match="either"):
        config.parse({**BASE, "datasets": [{"name": "toy"}]})
    with pytest.raises(UserError, match="distinct label"):
        config.parse(
            {**{k: v for k, v in BASE.items() if k != "dataset"}, "datasets": [{"name": "toy"}, {"name": "toy"}]}
        )


def test_only_and_exclude_in_the_config_shape_the_grid_and_cli_only_narrows_it():
    conf = config.parse(
        {
            **BASE,
            "perturbations": ["identity", "noise"],
            "models": ["vector_centroids", "centroids"],
            "only": ["*/ratios/*"],
            "exclude": ["*/noise/centroids"],
        }
    )
    reg = toy_registry()
    ids = [c.id for c in expand(conf, reg).combinations]
    assert ids == [
        "toy_system/ratios/identity/vector_centroids",
        "toy_system/ratios/identity/centroids",
        "toy_system/ratios/noise/vector_centroids",
    ]
    assert [c.id for c in expand(conf, reg, only=["*/centroids"]).combinations] == [
        "toy_system/ratios/identity/centroids"
    ]
