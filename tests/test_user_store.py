"""Readable stores: Optuna studies named after their combination and seed with their
identity as attributes (found with Optuna's own API, as optuna-dashboard finds them),
`harness export` round trips, and the leaderboard's provenance sidecar."""

from __future__ import annotations

import json
import re

import numpy as np
import optuna
import pandas as pd
import pytest

import harness
from harness.cli import main

TOY = {
    "plugins": ["toy_plugin"],
    "tasks": ["toy_system"],
    "representations": ["ratios", "corners"],
    "perturbations": ["identity"],
    "models": ["centroids"],
    "dataset": {"name": "toy", "size": 60},
    "run": {"trials": 2, "seeds": [0, 1], "workers": 1},
}


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("store") / "out"
    harness.run(TOY, results=str(folder), quiet=True)
    return folder


def test_optuna_finds_readable_study_names_and_attributes(out):
    url = f"sqlite:///{out}/results.sqlite"
    summaries = optuna.get_all_study_summaries(storage=url)
    stored = {r.key: r for r in harness.open_results(out).results()}
    assert len(summaries) == len(stored) == 4
    for s in summaries:
        attrs = s.user_attrs
        r = stored[attrs["key"]]
        assert s.study_name == f"toy:{r.task}/{r.representation}/{r.perturbation}/{r.model} seed={r.seed} [{r.key[:8]}]"
        assert (attrs["task"], attrs["dataset"], attrs["seed"]) == ("toy_system", "toy", r.seed)
        assert (attrs["representation"], attrs["perturbation"], attrs["model"]) == (
            r.representation,
            r.perturbation,
            r.model,
        )
        study = optuna.load_study(study_name=s.study_name, storage=url)
        assert len(study.trials) == r.n_trials == 2
    assert all(
        re.fullmatch(r"toy:toy_system/\w+.*/identity/centroids seed=[01] \[[0-9a-f]{8}\]", s.study_name)
        for s in summaries
    )


def test_export_tables_round_trip(out, tmp_path):
    assert main(["--plugin", "toy_plugin", "export", str(out), "--to", str(tmp_path / "tables")]) == 0
    res = harness.open_results(out, plugins=["toy_plugin"])
    for suffix, read in ((".csv", pd.read_csv), (".parquet", pd.read_parquet)):
        studies = read(tmp_path / "tables" / f"studies{suffix}")
        mine = res.studies().set_index("key").sort_index()
        back = studies.set_index("key").sort_index()
        assert list(back.index) == list(mine.index)
        for col in ("unit", "task", "model", "seed", "n_test", "n_trials"):
            assert list(back[col]) == list(mine[col]), col
        assert np.allclose(back["value"], mine["value"], rtol=0, atol=1e-12)
        assert back["study_name"].str.endswith("]").all()
        trials = read(tmp_path / "tables" / f"trials{suffix}")
        assert trials.groupby("key").size().to_dict() == mine["n_trials"].to_dict()
        pred = read(tmp_path / "tables" / f"predictions{suffix}")
        want = res.predictions()
        assert len(pred) == len(want) and list(pred["material"]) == list(want["material"])
        assert np.allclose(pred[["p_cubic", "p_tetragonal"]], want[["p_cubic", "p_tetragonal"]], rtol=0, atol=1e-12)


def test_export_to_mlflow_logs_each_study_once(out, tmp_path, capsys):
    from mlflow.tracking import MlflowClient

    target = tmp_path / "mlruns"
    assert main(["export", str(out), "--to", f"mlflow:{target}"]) == 0
    assert "4 studies logged" in capsys.readouterr().out
    client = MlflowClient(tracking_uri=target.as_uri())
    (exp,) = [e for e in client.search_experiments() if e.name == "harness"]
    runs = client.search_runs([exp.experiment_id])
    stored = {r.key: r for r in harness.open_results(out).results()}
    assert {run.data.tags["harness.key"] for run in runs} == set(stored)
    for run in runs:
        r = stored[run.data.tags["harness.key"]]
        assert run.data.metrics[f"test_{r.metric}"] == pytest.approx(r.value, abs=1e-12)
        assert run.data.tags["task"] == r.task and run.data.params["seed"] == str(r.seed)
        assert run.info.run_name.startswith(f"toy:{r.task}/")
    assert main(["export", str(out), "--to", f"mlflow:{target}"]) == 0  # again: nothing duplicated
    assert "0 studies logged" in capsys.readouterr().out
    assert len(client.search_runs([exp.experiment_id])) == 4


def test_leaderboard_provenance_sidecar(out):
    prov = json.loads((out / "leaderboard.provenance.json").read_text())
    assert prov["harness_version"] == harness.__version__
    assert set(prov) >= {"commit", "config_hash", "datasets", "time"}
    assert prov["datasets"]["toy"]["name"] == "toy" and prov["datasets"]["toy"]["content_id"]
    assert harness.open_results(out).provenance() == prov
    # leaderboard.json keeps its shape (a list of rows) so existing readers still work
    assert isinstance(json.loads((out / "leaderboard.json").read_text()), list)
