"""Plugins: discovery, duplicates, validation, parameters."""

from dataclasses import dataclass
from typing import ClassVar
import sys
import types

import pytest

from harness import hookimpl, registry
from harness.api import Representation, VECTOR
from harness.errors import UserError


def _module(name: str, **hooks) -> str:
    mod = types.ModuleType(name)
    for hook, fn in hooks.items():
        setattr(mod, hook, hookimpl(fn))
    sys.modules[name] = mod
    return name


@dataclass
class Dup(Representation):
    name: ClassVar[str] = "ratios"
    kind: ClassVar[str] = VECTOR


def test_plugin_module_entries_are_registered_with_their_source():
    reg = registry.load(["toy_plugin"])
    entry = reg.get("representation", "ratios")
    assert entry.plugin == "toy_plugin"
    assert "toy" in reg.names("dataset")


def test_duplicate_name_names_both_sources():
    name = _module("dup_plugin", harness_representations=lambda: [Dup])
    with pytest.raises(UserError) as err:
        registry.load(["toy_plugin", name])
    assert "toy_plugin" in str(err.value) and "dup_plugin" in str(err.value)


def test_misspelt_hook_is_caught():
    name = _module("typo_plugin", harness_representation=lambda: [])
    with pytest.raises(UserError, match="harness_representation"):
        registry.load([name])


def test_entry_that_is_not_a_dataclass_subclass_fails_naming_the_plugin():
    class NotAnEntry:
        name = "oops"

    name = _module("bad_entry_plugin", harness_models=lambda: [NotAnEntry])
    with pytest.raises(UserError, match="bad_entry_plugin"):
        registry.load([name])


def test_unknown_module_is_a_user_error():
    with pytest.raises(UserError, match="no_such_module_xyz"):
        registry.load(["no_such_module_xyz"])


def test_unknown_name_lists_the_choices():
    reg = registry.load(["toy_plugin"])
    with pytest.raises(UserError, match="corners, ratios|choose one of"):
        reg.get("representation", "nope")


def test_parameters_are_validated_and_coerced():
    reg = registry.load(["toy_plugin"])
    rep = reg.create("representation", "ratios", {"scale": 2})
    assert rep.scale == 2.0 and isinstance(rep.scale, float)
    assert rep.title == "ratios(scale=2)"
    with pytest.raises(UserError, match="no parameter 'n'.*valid: scale"):
        reg.create("representation", "ratios", {"n": 3})
    with pytest.raises(UserError, match="scale"):
        reg.create("representation", "ratios", {"scale": "big"})


def test_builtins_come_through_the_entry_point_group():
    import importlib.metadata

    groups = {ep.value for ep in importlib.metadata.entry_points(group="harness")}
    assert "harness_plugins.models" in groups
    reg = registry.load()
    assert reg.get("model", "random_forest").plugin.startswith("harness:")
