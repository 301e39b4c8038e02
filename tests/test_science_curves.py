"""Learning curves: nested training fractions, valid and test untouched, part of the key."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

from harness.services import config as config_mod
from harness.cli import main
from harness.services.errors import UserError
from harness.prepare.fractions import nested_split, nested_train
from harness.prepare.splits import Split, stratified_split

CONFIG = """
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["ratios"]
perturbations = ["identity"]
models = ["centroids"]
[dataset]
name = "toy"
[settings.centroids]
space = {{ standardize = [true] }}
[run]
trials = 1
seeds = [0, 1]
workers = 1
results = "out"
{fractions}
"""


def _split(seed=0):
    y = np.random.default_rng(3).choice([0, 1, 2], size=600, p=[0.6, 0.3, 0.1])
    return y, stratified_split(y, seed)


def test_fractions_are_nested_stratified_and_seeded():
    y, split = _split()
    shares = [0.05, 0.1, 0.25, 0.5, 0.9, 1.0]
    subsets = [set(nested_train(split.train, y, f, seed=0).tolist()) for f in shares]
    for small, large in itertools.pairwise(subsets):
        assert small < large
    assert subsets[-1] == set(split.train.tolist())
    whole = np.bincount(y[split.train], minlength=3) / len(split.train)
    for f in (0.1, 0.25, 0.5):
        part = nested_train(split.train, y, f, seed=0)
        assert abs(len(part) - f * len(split.train)) <= 3
        assert np.abs(np.bincount(y[part], minlength=3) / len(part) - whole).max() <= 0.01
    np.testing.assert_array_equal(nested_train(split.train, y, 0.25, 0), nested_train(split.train, y, 0.25, 0))
    assert set(nested_train(split.train, y, 0.25, 1).tolist()) != subsets[2]


def test_valid_and_test_are_never_touched():
    y, split = _split()
    for f in (0.1, 0.5):
        cut = nested_split(split, y, f, seed=0)
        assert cut.valid is split.valid and cut.test is split.test
        assert not set(cut.train.tolist()) & (set(split.valid.tolist()) | set(split.test.tolist()))
    # a training part that is only a slice of the materials: only its members are chosen
    odd = Split(split.train[::2], split.valid, split.test)
    assert set(nested_train(odd.train, y, 0.5, 0).tolist()) <= set(odd.train.tolist())
    assert nested_split(split, y, None, 0) is split


def test_bad_fractions_are_user_errors(tmp_path):
    for bad in ("[0.0, 0.5]", "[0.5, 1.5]", "[0.5, 0.5]"):
        path = tmp_path / "c.toml"
        path.write_text(CONFIG.format(fractions=f"train_fractions = {bad}"))
        with pytest.raises(UserError, match="train_fractions"):
            config_mod.load(path)


def test_a_learning_curve_run_keys_scores_and_draws_each_fraction(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "c.toml").write_text(CONFIG.format(fractions=""))
    assert main(["run", str(plain / "c.toml")]) == 0
    curve = tmp_path / "curve"
    curve.mkdir()
    (curve / "c.toml").write_text(CONFIG.format(fractions="train_fractions = [0.2, 0.5, 1.0]"))
    assert main(["run", str(curve / "c.toml")]) == 0

    rows = json.loads((curve / "out" / "leaderboard.json").read_text())
    by_dataset = {r["dataset"]: r for r in rows}
    assert set(by_dataset) == {"toy", "toy@train=0.2", "toy@train=0.5"}
    n_train = [by_dataset[d]["n_train"] for d in ("toy@train=0.2", "toy@train=0.5", "toy")]
    assert n_train[0] < n_train[1] < n_train[2]
    assert len({by_dataset[d]["n_test"] for d in by_dataset}) == 1
    # the whole split is the plain study: same score as the run without fractions
    plain_rows = json.loads((plain / "out" / "leaderboard.json").read_text())
    assert plain_rows[0]["mean"] == by_dataset["toy"]["mean"]
    assert (curve / "out" / "learning_curves.csv").exists()
    assert list((curve / "out").glob("learning_curve-toy-*.png"))
    lines = (curve / "out" / "learning_curves.csv").read_text().splitlines()
    assert len(lines) == 1 + 3 and [ln.split(",")[3] for ln in lines[1:]] == ["0.2", "0.5", "1"]
    assert not list((plain / "out").glob("learning_curve*"))


def test_the_fraction_is_part_of_the_study_key(tmp_path):
    import toy_plugin
    from rich.console import Console

    from harness.services import registry
    from harness.plan.plan import make_plan
    from harness.services.store import Store

    reg = registry.load([toy_plugin])
    keys = {}
    for name, fractions in (("plain", ""), ("curve", "train_fractions = [0.2, 1.0]")):
        path = tmp_path / f"{name}.toml"
        path.write_text(CONFIG.format(fractions=fractions))
        conf = config_mod.load(path)
        plan = make_plan(conf, reg, Store(f"sqlite:///{tmp_path / (name + '.sqlite')}"), Console(quiet=True))
        keys[name] = {(s.seed, s.train_fraction): s.key for s in plan.studies}
    assert set(keys["curve"]) == {(0, 0.2), (1, 0.2), (0, None), (1, None)}
    assert keys["curve"][(0, None)] == keys["plain"][(0, None)]  # fraction 1 is the plain study
    assert keys["curve"][(0, 0.2)] != keys["curve"][(0, None)] != keys["curve"][(1, None)]


def test_a_fraction_study_names_its_curve_as_a_field_and_older_rows_still_find_theirs():
    from harness.services.records import UnitResult

    def row(**kw):
        base = dict(
            unit="u",
            key="k",
            dataset="mp@train=0.25",
            task="t",
            representation="r",
            perturbation="p",
            model="m",
            seed=0,
            metric="roc_auc",
            value=0.5,
            identity={"train_fraction": 0.25},
        )
        return UnitResult(**{**base, **kw})

    assert row(curve="mp").curve_dataset == "mp" and row(curve="mp").train_fraction == 0.25
    assert row().curve_dataset == "mp"  # written before the field existed
    whole = row(dataset="mp@train=x", identity={})
    assert whole.train_fraction == 1.0 and whole.curve_dataset == "mp@train=x"  # a label, not a fraction
