"""Plugins: discovery, duplicates, validation, parameters, metrics, the public surface."""

import ast
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import pytest
import toy_plugin

import harness
from harness import VECTOR, Choice, Metric, Model, Representation, UserError, hookimpl
from harness.services import registry

ROOT = Path(__file__).resolve().parents[1]


class Hooks:
    """A plugin object: hook functions as methods (as llm's tests register mock plugins)."""

    def __init__(self, name: str = "mock", **hooks):
        self.__name__ = name
        for hook, fn in hooks.items():
            setattr(self, hook, hookimpl(fn))


def toy_registry(*plugins):
    return registry.load([toy_plugin, *plugins], entry_points=False)


@dataclass
class Dup(Representation):
    name: ClassVar[str] = "ratios"
    kind: ClassVar[str] = VECTOR


def test_plugin_module_entries_are_registered_with_their_source():
    reg = registry.load(["toy_plugin"], entry_points=False)
    entry = reg.get("representation", "ratios")
    assert entry.plugin == "toy_plugin"
    assert reg.names("dataset") == ["toy"]
    assert reg.names("model") == ["centroids", "vector_centroids"]


def test_plugin_objects_are_accepted_next_to_module_names():
    reg = registry.load(["toy_plugin", Hooks("extra", harness_representations=lambda: [Dup2])], entry_points=False)
    assert reg.get("representation", "dup2").plugin == "extra"


@dataclass
class Dup2(Representation):
    name: ClassVar[str] = "dup2"
    kind: ClassVar[str] = VECTOR


def test_duplicate_name_names_both_sources():
    with pytest.raises(UserError) as err:
        toy_registry(Hooks("dup_plugin", harness_representations=lambda: [Dup]))
    assert "registered by 'toy_plugin' and by 'dup_plugin'" in str(err.value)


def test_misspelt_hook_is_caught():
    with pytest.raises(UserError, match="harness_representation"):
        toy_registry(Hooks("typo_plugin", harness_representation=lambda: []))


def test_entry_that_is_not_a_dataclass_subclass_fails_naming_the_plugin():
    class NotAnEntry:
        name = "oops"

    with pytest.raises(UserError, match="bad_entry_plugin"):
        toy_registry(Hooks("bad_entry_plugin", harness_models=lambda: [NotAnEntry]))


def test_a_search_space_over_something_that_is_not_a_field_fails_at_load():
    @dataclass
    class Sloppy(Model):
        name: ClassVar[str] = "sloppy"
        search_space: ClassVar[dict] = {"depth": Choice(1, 2)}
        width: int = 3

    with pytest.raises(UserError, match="sloppy_plugin.*'depth'.*width"):
        toy_registry(Hooks("sloppy_plugin", harness_models=lambda: [Sloppy]))


def test_unknown_module_is_a_user_error():
    with pytest.raises(UserError, match="no_such_module_xyz"):
        registry.load(["no_such_module_xyz"], entry_points=False)


def test_unknown_name_lists_the_choices():
    with pytest.raises(UserError, match="choose one of: corners, ratios"):
        toy_registry().get("representation", "nope")


def test_parameters_are_validated_and_coerced():
    reg = toy_registry()
    rep = reg.create("representation", "ratios", {"scale": 2})
    assert rep.scale == 2.0 and isinstance(rep.scale, float)
    assert rep.title == "ratios(scale=2)"
    with pytest.raises(UserError, match="no parameter 'n'.*valid: scale"):
        reg.create("representation", "ratios", {"n": 3})
    with pytest.raises(UserError, match="scale"):
        reg.create("representation", "ratios", {"scale": "big"})


@dataclass
class Vault(Representation):
    name: ClassVar[str] = "vault"
    kind: ClassVar[str] = VECTOR
    token: int = field(default=0, repr=False, metadata={"secret": True})
    level: int = 1


def test_secret_parameters_stay_out_of_titles_identities_and_messages():
    reg = toy_registry(Hooks(harness_representations=lambda: [Vault]))
    rep = reg.create("representation", "vault", {"token": 123456789, "level": 2})
    assert rep.token == 123456789
    assert rep.title == "vault(level=2)" and rep.params() == {"level": 2} and "123456789" not in repr(rep)
    with pytest.raises(UserError) as err:
        reg.create("representation", "vault", {"token": "sesame-987"})
    assert "token" in str(err.value) and "sesame-987" not in str(err.value)
    assert Vault.secrets() == ("token",)


def _squared_error(y, proba):
    return float(((proba[:, 1] - y) ** 2).mean())


BRIER = Metric("squared_error", _squared_error, higher_is_better=False)


def test_plugins_add_metrics_and_a_duplicate_metric_names_both_plugins():
    reg = toy_registry(Hooks("scores", harness_metrics=lambda: [BRIER]))
    assert reg.metric("squared_error") is BRIER
    assert {"roc_auc", "accuracy", "macro_f1", "log_loss"} <= set(reg.metrics)
    with pytest.raises(UserError, match="duplicate metric 'squared_error'.*'scores'.*'again'"):
        toy_registry(Hooks("scores", harness_metrics=lambda: [BRIER]), Hooks("again", harness_metrics=lambda: [BRIER]))
    with pytest.raises(UserError, match="harness.Metric"):
        toy_registry(Hooks("wrong", harness_metrics=lambda: [_squared_error]))


def test_a_lower_is_better_metric_is_negated_for_tuning():
    y, proba = __import__("numpy").array([0, 1]), __import__("numpy").array([[0.8, 0.2], [0.4, 0.6]])
    assert BRIER(y, proba) == pytest.approx(0.1)
    assert BRIER.objective(y, proba) == pytest.approx(-0.1)


def test_builtins_come_through_the_entry_point_group():
    import importlib.metadata

    groups = {ep.value for ep in importlib.metadata.entry_points(group="harness")}
    assert "harness_plugins.models" in groups
    reg = registry.load()
    assert reg.get("model", "random_forest").plugin.startswith("harness:")


# ------------------------------------------------------------------ the public surface

PUBLIC_MODULES = {"harness", "harness.torch"}  # harness.torch: the optional torch base


def _private_imports(path: Path) -> list[str]:
    """`file:line imports module` for each harness module other than the public ones."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module == "harness":
            names = [f"harness.{a.name}" for a in node.names if a.name in _SUBMODULES]  # `from harness import grid`
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found += [
            f"{path.name}:{node.lineno} imports {n}"
            for n in names
            if n.startswith("harness.") and n not in PUBLIC_MODULES
        ]
    return found


_SUBMODULES = {p.stem for p in (ROOT / "harness").iterdir() if p.suffix == ".py" or p.is_dir()} - {"__init__"}


def test_plugins_and_examples_import_only_the_public_api():
    files = [*(ROOT / "plugins").rglob("*.py"), *(ROOT / "examples").rglob("*.py")]
    assert len(files) > 20
    offending = [hit for f in files for hit in _private_imports(f)]
    assert offending == []


def test_the_import_check_catches_a_private_import(tmp_path):
    bad = tmp_path / "probe.py"
    bad.write_text(
        "from harness.services.errors import UserError\nfrom harness import prepare, Skip\nimport harness.plan.grid\n"
        "import harness\nfrom harness import torch\n"
    )
    hits = _private_imports(bad)
    assert [h.split(" imports ")[1] for h in hits] == [
        "harness.services.errors",
        "harness.prepare",
        "harness.plan.grid",
    ]


def test_everything_public_is_importable_from_harness():
    for name in harness.__all__:
        assert hasattr(harness, name), name
    for needed in (
        "UserError",
        "Skip",
        "Material",
        "Metric",
        "Choice",
        "Range",
        "cache_dir",
        "structure_hash",
        "crystal_system",
        "spacegroup_number",
        "symmetry_dataset",
        "hookimpl",
    ):
        assert needed in harness.__all__
