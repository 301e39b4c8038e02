"""The Python API: `harness.run` -> `Results` tables and models, checked against the CLI's
own output (`harness leaderboard --format json`, `harness predict --format json`)."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure

import harness
from harness.cli import main

TOY = {
    "plugins": ["toy_plugin"],
    "tasks": ["toy_system"],
    "representations": ["ratios", "corners"],
    "perturbations": [{"name": "noise", "sigma": 0.3}],
    "models": ["centroids"],
    "dataset": {"name": "toy"},
    "run": {"trials": 3, "seeds": [0, 1], "workers": 1},
}


@pytest.fixture(scope="module")
def ran(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "out"
    res = harness.run(TOY, results=str(out), quiet=True)
    return out, res


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    if isinstance(a, float):
        return a == pytest.approx(b, rel=1e-12, abs=1e-12)
    return a == b


def test_run_returns_results_whose_leaderboard_is_the_cli_json(ran, capsys):
    out, res = ran
    assert isinstance(res, harness.Results) and not res.failed
    assert "harness.run (Python)" in (out / "run.log").read_text()
    reopened = harness.open_results(out)
    board = reopened.leaderboard()
    assert isinstance(board, pd.DataFrame) and len(board) == 2
    capsys.readouterr()
    assert main(["leaderboard", str(out), "--format", "json"]) == 0
    cli_rows = json.loads(capsys.readouterr().out)
    assert len(cli_rows) == len(board)
    for cli_row, (_, row) in zip(cli_rows, board.iterrows()):
        for key, value in cli_row.items():
            got = row[key]
            got = list(got) if isinstance(got, (list, np.ndarray)) else got
            got = got.item() if isinstance(got, np.generic) else got
            assert _same(value, got), (key, value, got)
    # the same store read through a URL, and the run's own Results, agree
    assert reopened.leaderboard().equals(harness.open_results(f"sqlite:///{out}/results.sqlite").leaderboard())
    assert res.leaderboard().equals(board)


def test_leaderboard_filters_by_task_and_metric(ran):
    res = harness.open_results(ran[0])
    assert set(res.leaderboard(task="toy_system")["task"]) == {"toy_system"}
    by_acc = res.leaderboard(metric="accuracy")
    assert list(by_acc["accuracy_mean"]) == sorted(by_acc["accuracy_mean"], reverse=True)
    with pytest.raises(harness.UserError, match="no results for task 'nope'"):
        res.leaderboard(task="nope")


def test_predictions_are_the_stored_test_predictions_with_class_names(ran):
    res = harness.open_results(ran[0], plugins=["toy_plugin"])
    pred = res.predictions()
    stored = {(r.unit, r.seed): r for r in res.results()}
    assert set(pred["study"]) == {u for u, _ in stored}
    assert set(pred["true"]) <= {"cubic", "tetragonal"}
    for (unit, seed), r in stored.items():
        mine = pred[(pred["study"] == unit) & (pred["seed"] == seed)]
        assert list(mine["material"]) == r.predictions["ids"]
        assert np.allclose(mine[["p_cubic", "p_tetragonal"]].to_numpy(), r.predictions["proba"])
    one = res.predictions(combination="toy_system/corners/*/centroids", seed=1)
    assert set(one["seed"]) == {1} and all("corners" in c for c in one["combination"])


def test_a_models_predictions_match_harness_predict(ran, tmp_path, capsys):
    out, _ = ran
    res = harness.open_results(out, plugins=["toy_plugin"])
    paths = []
    for i, (a, c) in enumerate([(3.0, 3.0), (3.5, 4.6), (4.2, 4.2)]):
        path = tmp_path / f"s{i}.cif"
        Structure(Lattice.tetragonal(a, c), ["Fe"], [[0, 0, 0]]).to(filename=str(path))
        paths.append(str(path))
    combo = "toy_system/ratios*/*/centroids"
    model = res.model(combo, seed=1)
    frame = model.predict(paths)
    capsys.readouterr()
    assert (
        main(
            ["--plugin", "toy_plugin", "predict", str(out), *paths, "--only", combo, "--seed", "1", "--format", "json"]
        )
        == 0
    )
    (cli,) = json.loads(capsys.readouterr().out)
    assert list(frame["material"]) == [m["material"] for m in cli["materials"]] == paths
    assert list(frame["predicted"]) == [m["predicted"] for m in cli["materials"]]
    assert frame[["p_cubic", "p_tetragonal"]].to_numpy().tolist() == [m["proba"] for m in cli["materials"]]
    # Structures in memory: the same numbers (positions, hence noise draws, are the same)
    again = model.predict([Structure.from_file(p) for p in paths])
    assert again[["p_cubic", "p_tetragonal"]].to_numpy().tolist() == [m["proba"] for m in cli["materials"]]
    assert list(again["material"]) == ["0", "1", "2"]
    with pytest.raises(harness.UserError, match="matches 2 studies"):
        res.model(combo)


def test_results_show_as_an_html_table(ran):
    html = harness.open_results(ran[0])._repr_html_()
    assert "<table" in html and "toy_system" in html and "centroids" in html


def test_run_takes_a_toml_string_and_a_path_and_validates_like_the_cli(tmp_path):
    toml = (
        f'plugins = ["toy_plugin"]\ntasks = ["toy_system"]\nrepresentations = ["ratios"]\nperturbations = ["identity"]\n'
        f'models = ["centroids"]\n[dataset]\nname = "toy"\nsize = 40\n[run]\ntrials = 1\nseeds = [0]\n'
        f'workers = 1\nresults = "{tmp_path / "s"}"\n'
    )
    res = harness.run(toml, quiet=True)
    assert len(res.studies()) == 1
    path = tmp_path / "c.toml"
    path.write_text(toml)
    assert len(harness.run(str(path), quiet=True, results=str(tmp_path / "p")).studies()) == 1
    with pytest.raises(harness.UserError, match="unknown key 'modles'"):
        harness.run({**TOY, "modles": ["x"]}, quiet=True)
    with pytest.raises(harness.UserError, match="trials"):
        harness.run(TOY, quiet=True, trials=0, results=str(tmp_path / "t"))
    with pytest.raises(harness.UserError, match="no results in"):
        harness.open_results(tmp_path / "nothing")
