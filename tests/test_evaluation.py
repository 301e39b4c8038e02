"""Evaluation beyond one random split: held-out families, evaluate datasets and shipped
split columns never leak into training, are scored on their own, and enter the identity."""

import json
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest
from rich.console import Console

from harness import hookimpl

from harness.services import config, registry
from harness.sdk.api import Material
from harness.services.errors import UserError
from harness.prepare.inputs import read_inputs
from harness.sdk.metrics import roc_auc
from harness.plan.plan import make_plan
from harness.prepare.prepare import prepare
from harness.runner import run
from harness.services.store import Store
from toy_plugin import ToyDataset


@dataclass
class OtherToy(ToyDataset):
    """Toy crystals of another source: other ids, other draws."""

    name: ClassVar[str] = "toy_other"
    default: ClassVar[bool] = False
    size: int = 40
    seed: int = 7

    def load(self, ctx):
        return [Material(m.id.replace("toy-", "other-"), m.structure, m.props) for m in super().load(ctx)]


@dataclass
class SplitToy(ToyDataset):
    """Toy crystals that ship their split in a `split` property."""

    name: ClassVar[str] = "toy_split"
    default: ClassVar[bool] = False
    parts: tuple = ("train", "train", "train", "Valid", "TEST")  # odd period: both classes in each

    def load(self, ctx):
        return [
            Material(m.id, m.structure, {**m.props, "split": self.parts[i % len(self.parts)]})
            for i, m in enumerate(super().load(ctx))
        ]


class MoreToys:
    @hookimpl
    def harness_datasets(self):
        return [OtherToy, SplitToy]


def _registry():
    return registry.load(["toy_plugin", MoreToys()])


def _config(tmp_path, seeds=(0, 1, 2), **datasets):
    base = {
        "tasks": ["toy_system"],
        "representations": ["ratios"],
        "perturbations": [{"name": "noise", "sigma": 0.3}],
        "models": ["centroids"],
        "run": {"trials": 2, "workers": 1, "seeds": list(seeds), "results": str(tmp_path / "out")},
    }
    return config.parse({**base, **datasets}, source=str(tmp_path / "bench.toml"))


def _prepared(conf, tmp_path):
    """Plan and prepare every study; (part, study, inputs) of the first training dataset."""
    console = Console(quiet=True)
    plan = make_plan(conf, _registry(), Store(f"sqlite:///{tmp_path}/plan.sqlite"), console)
    part = plan.parts[0]
    studies = prepare(conf, part, part.studies, console).studies
    return part, [(s, read_inputs(s.inputs)) for s in studies]


def _split_ids(data, seed):
    sp = data.splits[seed]
    return {p: {data.ids[i] for i in getattr(sp, p)} for p in ("train", "valid", "test")}


FAMILY = [f"toy-{i}" for i in range(10)]


def test_a_held_out_family_is_in_no_split_of_any_seed_and_is_scored_on_its_own(tmp_path):
    conf = _config(tmp_path, datasets=[{"name": "toy", "hold_out": {"label": "fam", "ids": FAMILY}}])
    _, studies = _prepared(conf, tmp_path)
    for study, data in studies:
        parts = _split_ids(data, study.seed)
        assert not set(FAMILY) & (parts["train"] | parts["valid"] | parts["test"])
        assert len(parts["train"] | parts["valid"] | parts["test"]) == 120 - len(FAMILY)  # nothing else lost
        assert sorted(data.ids[i] for i in data.evaluations["fam"]) == sorted(FAMILY)

    assert run(conf, _registry(), Console(quiet=True)) == 0
    results = list(Store(f"sqlite:///{tmp_path}/out/results.sqlite").results())
    assert len(results) == 3
    for r in results:
        fam = r.evaluations["fam"]
        assert sorted(fam["predictions"]["ids"]) == sorted(FAMILY) and fam["n"] == len(FAMILY)
        assert not set(FAMILY) & set(r.predictions["ids"])
        y, proba = np.asarray(fam["predictions"]["y"]), np.asarray(fam["predictions"]["proba"])
        assert fam["value"] == roc_auc(y, proba)
    rows = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert sorted((r["dataset"], r["n_test"]) for r in rows) == [("toy", 17), ("toy→fam", 10)]
    assert all(r["ci_low"] is not None for r in rows)


def test_an_evaluate_dataset_is_scored_by_the_models_of_the_training_dataset_and_never_trained_on(tmp_path):
    conf = _config(
        tmp_path,
        seeds=(0, 1),
        datasets=[{"name": "toy"}, {"name": "toy_other", "label": "elsewhere", "role": "evaluate"}],
    )
    _, studies = _prepared(conf, tmp_path)
    for study, data in studies:
        parts = _split_ids(data, study.seed)
        assert all(i.startswith("toy-") for p in parts.values() for i in p)
        assert len(parts["train"] | parts["valid"] | parts["test"]) == 120
        assert sorted(data.ids[i] for i in data.evaluations["elsewhere"]) == sorted(f"other-{i}" for i in range(40))

    assert run(conf, _registry(), Console(quiet=True)) == 0
    for r in Store(f"sqlite:///{tmp_path}/out/results.sqlite").results():
        assert r.dataset == "toy" and r.evaluations["elsewhere"]["n"] == 40
        assert r.evaluations["elsewhere"]["value"] > 0.8  # the ratios tell cubic from tetragonal anywhere
    rows = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert {r["dataset"] for r in rows} == {"toy", "toy→elsewhere"}


def test_materials_an_evaluate_dataset_shares_with_the_training_data_are_kept_out_of_training(tmp_path):
    # The evaluate dataset is the first 30 toy crystals themselves: same ids, same structures.
    conf = _config(
        tmp_path, datasets=[{"name": "toy"}, {"name": "toy", "label": "same", "size": 30, "role": "evaluate"}]
    )
    _, studies = _prepared(conf, tmp_path)
    shared = {f"toy-{i}" for i in range(30)}
    for study, data in studies:
        parts = _split_ids(data, study.seed)
        assert not shared & (parts["train"] | parts["valid"])
        assert not shared & parts["test"]  # scored once, in their own set
        assert {data.ids[i] for i in data.evaluations["same"]} == shared


def _keys(tmp_path, **datasets):
    conf = _config(tmp_path, seeds=(0,), **datasets)
    plan = make_plan(conf, _registry(), Store(f"sqlite:///{tmp_path}/keys.sqlite"), Console(quiet=True))
    return [s.key for s in plan.studies], plan.studies[0].identity


def test_the_identity_covers_the_evaluation_data_and_the_family(tmp_path):
    plain, ident = _keys(tmp_path, datasets=[{"name": "toy"}])
    assert "evaluate" not in ident and "hold_out" not in ident["split"]  # plain configs keep their keys
    evaluated = _keys(tmp_path, datasets=[{"name": "toy"}, {"name": "toy_other", "role": "evaluate"}])[0]
    changed = _keys(tmp_path, datasets=[{"name": "toy"}, {"name": "toy_other", "role": "evaluate", "size": 41}])[0]
    family = _keys(tmp_path, datasets=[{"name": "toy", "hold_out": {"label": "f", "ids": ["toy-1"]}}])[0]
    renamed = _keys(tmp_path, datasets=[{"name": "toy", "hold_out": {"label": "g", "ids": ["toy-1"]}}])[0]
    other_family = _keys(tmp_path, datasets=[{"name": "toy", "hold_out": {"label": "f", "ids": ["toy-2"]}}])[0]
    assert len({plain[0], evaluated[0], changed[0], family[0], other_family[0]}) == 5
    assert family == renamed  # the label only names the family; its members decide the number


def test_evaluate_on_picks_the_evaluate_datasets_and_names_unknown_ones(tmp_path):
    datasets = [
        {"name": "toy", "evaluate_on": ["b"]},
        {"name": "toy_other", "label": "a", "role": "evaluate"},
        {"name": "toy_other", "label": "b", "role": "evaluate", "size": 20},
    ]
    conf = _config(tmp_path, seeds=(0,), datasets=datasets)
    _, [(_, data)] = _prepared(conf, tmp_path)
    assert list(data.evaluations) == ["b"]
    with pytest.raises(UserError, match="evaluate_on names 'c'"):
        _config(tmp_path, datasets=[{"name": "toy", "evaluate_on": ["c"]}])
    with pytest.raises(UserError, match="tasks does not apply"):
        _config(
            tmp_path, datasets=[{"name": "toy"}, {"name": "toy_other", "role": "evaluate", "tasks": ["toy_system"]}]
        )


def test_a_shipped_split_column_is_honoured_for_every_seed(tmp_path):
    conf = _config(tmp_path, datasets=[{"name": "toy_split", "split_column": "split"}])
    _, studies = _prepared(conf, tmp_path)
    want = {
        p: {f"toy-{i}" for i in range(120) if SplitToy.parts[i % 5].lower() == p} for p in ("train", "valid", "test")
    }
    for study, data in studies:
        assert _split_ids(data, study.seed) == want


def test_without_a_valid_part_validation_is_drawn_from_the_train_part(tmp_path):
    conf = _config(
        tmp_path,
        datasets=[{"name": "toy_split", "split_column": "split", "split_values": {"train": ["train", "valid"]}}],
    )
    _, studies = _prepared(conf, tmp_path)
    declared_train = {f"toy-{i}" for i in range(120) if i % 5 < 4}
    drawn = []
    for study, data in studies:
        parts = _split_ids(data, study.seed)
        assert parts["test"] == {f"toy-{i}" for i in range(120) if i % 5 == 4}
        assert parts["train"] | parts["valid"] == declared_train and not parts["train"] & parts["valid"]
        assert abs(len(parts["valid"]) - 0.15 / 0.85 * len(declared_train)) <= 1
        drawn.append(frozenset(parts["valid"]))
    assert len(set(drawn)) == 3  # seeded per seed


def test_a_split_value_that_names_no_part_is_a_user_error_naming_it(tmp_path):
    conf = _config(
        tmp_path, datasets=[{"name": "toy_split", "split_column": "split", "split_values": {"test": "holdout"}}]
    )
    with pytest.raises(UserError, match="'TEST' in the split column"):
        _prepared(conf, tmp_path)
    conf = _config(tmp_path, datasets=[{"name": "toy_split", "split_column": "fold"}])
    with pytest.raises(UserError, match="no material carries the split column 'fold'"):
        _prepared(conf, tmp_path)


def test_featurize_config_fills_the_cache_of_evaluate_datasets_too(tmp_path, capsys):
    from harness.cli import main

    cfg = tmp_path / "bench.toml"
    cfg.write_text(
        'plugins = ["toy_plugin"]\ntasks = ["toy_system"]\nrepresentations = ["ratios"]\n'
        'perturbations = ["identity"]\nmodels = ["centroids"]\n[[datasets]]\nname = "toy"\n'
        '[[datasets]]\nname = "toy"\nlabel = "more"\nrole = "evaluate"\nsize = 37\nseed = 3\n'
    )
    assert main(["featurize", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "120 featurised" in out and "37 featurised" in out
