"""The TOML config: validation with messages that name the key and the fix."""

import pytest

from harness import config, registry
from harness.errors import UserError
from harness.grid import expand

BASE = {
    "plugins": ["toy_plugin"],
    "tasks": ["toy_system"],
    "representations": [{"name": "ratios", "scale": [1.0, 3.0]}, {"name": "corners"}],
    "perturbations": ["identity"],
    "models": ["random_forest"],
    "dataset": {"name": "toy"},
}


def test_list_parameters_expand_and_unfitting_kinds_are_skipped_with_a_reason():
    conf = config.parse(BASE)
    grid = expand(conf, registry.load(["toy_plugin"]))
    ids = [c.id for c in grid.combinations]
    assert ids == ["toy_system/ratios/identity/random_forest", "toy_system/ratios(scale=3)/identity/random_forest"]
    assert grid.skipped == [("toy_system/corners/identity/random_forest", "random_forest takes vector, not cloud")]


def test_task_defaults_fill_unset_representation_parameters_only():
    conf = config.parse({**BASE, "representations": [{"name": "ratios"}]})
    (combo,) = expand(conf, registry.load(["toy_plugin"])).combinations
    assert combo.representation.scale == 2.0  # ToySystem prefers scale 2


def test_only_selects_combinations_by_glob():
    conf = config.parse(BASE)
    grid = expand(conf, registry.load(["toy_plugin"]), only=["*/ratios(scale=3)/*"])
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
    conf = config.parse({**BASE, "models": ["random_forrest"]})
    with pytest.raises(UserError, match="unknown model 'random_forrest'.*random_forest"):
        expand(conf, registry.load(["toy_plugin"]))


def test_settings_for_an_unknown_model_are_an_error():
    conf = config.parse({**BASE, "settings": {"pointnett": {"max_epochs": 2}}})
    with pytest.raises(UserError, match="pointnett"):
        expand(conf, registry.load(["toy_plugin"]))


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(UserError, match="cannot read config"):
        config.load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("tasks = [")
    with pytest.raises(UserError, match="invalid TOML"):
        config.load(bad)


def test_several_datasets_each_with_their_own_tasks():
    conf = config.parse({
        **{k: v for k, v in BASE.items() if k not in ("dataset", "tasks")},
        "datasets": [{"name": "toy", "label": "small", "size": 40, "tasks": ["toy_system"]},
                     {"name": "toy", "label": "large", "size": 80, "tasks": "toy_system"}],
    })
    assert [(d.label, d.params, [t.name for t in d.tasks]) for d in conf.datasets] == [
        ("small", {"size": 40}, ["toy_system"]), ("large", {"size": 80}, ["toy_system"])]


def test_dataset_and_datasets_together_or_twice_the_same_label_are_errors():
    with pytest.raises(UserError, match="either"):
        config.parse({**BASE, "datasets": [{"name": "toy"}]})
    with pytest.raises(UserError, match="distinct label"):
        config.parse({**{k: v for k, v in BASE.items() if k != "dataset"}, "datasets": [{"name": "toy"}, {"name": "toy"}]})


def test_only_and_exclude_in_the_config_shape_the_grid_and_cli_only_narrows_it():
    conf = config.parse({**BASE, "perturbations": ["identity", "noise"], "models": ["random_forest", "xgboost"],
                         "only": ["*/ratios/*"], "exclude": ["*/noise/xgboost"]})
    reg = registry.load(["toy_plugin"])
    ids = [c.id for c in expand(conf, reg).combinations]
    assert ids == ["toy_system/ratios/identity/random_forest", "toy_system/ratios/identity/xgboost",
                   "toy_system/ratios/noise/random_forest"]
    assert [c.id for c in expand(conf, reg, only=["*/xgboost"]).combinations] == ["toy_system/ratios/identity/xgboost"]
