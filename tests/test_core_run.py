"""`harness run` end to end on the toy plugin: results, resume, determinism, user errors."""

import json
import sqlite3
from pathlib import Path

import pytest

from harness.cli import main

CONFIG = """
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["ratios", "corners"]
perturbations = ["identity", {{name = "noise", sigma = 0.3}}]
models = ["vector_centroids", "centroids"]
[dataset]
name = "toy"
bad = 2
[run]
trials = 2
workers = {workers}
seeds = [0, 1]
results = "{results}"
"""


def _config(tmp_path: Path, results="out", workers=1, **extra) -> Path:
    path = tmp_path / "bench.toml"
    path.write_text(CONFIG.format(results=results, workers=workers) + "".join(f"{k} = {v}\n" for k, v in extra.items()))
    return path


def _rows(path: Path) -> list[dict]:
    return json.loads((path / "leaderboard.json").read_text())


def _strip_times(rows):
    return [{k: v for k, v in r.items() if k != "fit_seconds"} for r in rows]


def test_run_writes_a_leaderboard_per_task_and_resumes_without_new_trials(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "2 skipped: dummy species: 2" in out  # bad structures are counted, not dropped silently
    assert "combinations skipped" in out and "vector_centroids takes vector, not cloud" in out
    rows = _rows(tmp_path / "out")
    assert sorted((r["representation"], r["perturbation"], r["model"]) for r in rows) == sorted(
        (rep, pert, model)
        for rep in ("ratios(scale=2)", "corners")
        for pert in ("identity", "noise(sigma=0.3)")
        for model in ("vector_centroids", "centroids")
        if not (rep == "corners" and model == "vector_centroids")
    )
    for r in rows:
        assert r["n_seeds"] == 2 and r["metric"] == "roc_auc" and 0 <= r["mean"] <= 1
        assert {"task", "representation", "perturbation", "model", "metric", "mean", "std", "n_seeds", "n_test"} <= set(
            r
        )
    assert rows[0]["mean"] >= rows[-1]["mean"]  # best first
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.png", "skipped.txt"):
        assert (tmp_path / "out" / name).exists()

    db = tmp_path / "out" / "results.sqlite"
    before = sqlite3.connect(db).execute("SELECT unit, finished FROM harness_results ORDER BY unit").fetchall()
    assert len(before) == 6 * 2
    assert main(["run", str(cfg)]) == 0
    assert "12 already done, 0 to run" in capsys.readouterr().out
    after = sqlite3.connect(db).execute("SELECT unit, finished FROM harness_results ORDER BY unit").fetchall()
    assert before == after


def test_same_config_gives_the_same_table(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    assert main(["run", str(_config(a, workers=2))]) == 0
    assert main(["run", str(_config(b, workers=1))]) == 0
    assert _strip_times(_rows(a / "out")) == _strip_times(_rows(b / "out"))


def test_an_interrupted_run_keeps_finished_studies(tmp_path, monkeypatch):
    from harness.execute import study

    calls = {"n": 0}
    real = study.run_study

    def flaky(spec, env):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(spec, env)

    monkeypatch.setattr("harness.execute.executors.local.run_study", flaky)
    cfg = _config(tmp_path)
    assert main(["run", str(cfg)]) == 130
    done = (
        sqlite3.connect(tmp_path / "out" / "results.sqlite")
        .execute("SELECT COUNT(*) FROM harness_results")
        .fetchone()[0]
    )
    assert done == 2
    monkeypatch.setattr("harness.execute.executors.local.run_study", real)
    assert main(["run", str(cfg)]) == 0
    assert len(_rows(tmp_path / "out")) == 6


def test_changing_trials_reruns_the_studies(tmp_path, capsys):
    cfg = _config(tmp_path)
    assert main(["run", str(cfg), "--only", "*/identity/vector_centroids"]) == 0
    capsys.readouterr()
    assert main(["run", str(cfg), "--only", "*/identity/vector_centroids", "--trials", "3"]) == 0
    assert "0 already done, 2 to run" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "missing.toml"], "cannot read config"),
        (["run", "{cfg}", "--only", "nothing/*"], "no combination to run"),
        (["leaderboard", "{tmp}"], "no results"),
        (["featurize", "{tmp}/none.cif", "-r", "ratios", "--plugin", "toy_plugin"], "cannot read structure"),
        (["list", "--plugin", "no_such_plugin_module"], "no_such_plugin_module"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, capsys, args, message):
    cfg = _config(tmp_path)
    args = [a.format(cfg=cfg, tmp=tmp_path) for a in args]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "Traceback" not in err
    assert len(err.splitlines()) == 1


def test_leaderboard_command_renders_every_format(tmp_path, capsys):
    cfg = _config(tmp_path)
    main(["run", str(cfg), "--only", "*/identity/*"])
    capsys.readouterr()
    assert main(["leaderboard", str(tmp_path / "out"), "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 3 and rows[0]["n_seeds"] == 2
    assert main(["leaderboard", str(tmp_path / "out"), "--format", "markdown"]) == 0
    assert "| # | representation |" in capsys.readouterr().out
    assert main(["leaderboard", str(tmp_path / "out"), "--format", "csv"]) == 0
    assert capsys.readouterr().out.startswith("dataset,task,representation,perturbation,model,metric,mean,std")


def test_one_table_per_task_and_dataset_when_a_config_has_several(tmp_path, capsys):
    cfg = tmp_path / "multi.toml"
    cfg.write_text(
        'plugins = ["toy_plugin"]\nrepresentations = ["ratios"]\nmodels = ["vector_centroids"]\n'
        'perturbations = ["identity"]\n'
        '[[datasets]]\nname = "toy"\nlabel = "small"\nsize = 60\ntasks = ["toy_system"]\n'
        '[[datasets]]\nname = "toy"\nlabel = "large"\nsize = 100\ntasks = ["toy_system"]\n'
        "[run]\ntrials = 1\nseeds = [0]\nworkers = 1\n"
    )
    assert main(["run", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "toy_system on large" in out and "toy_system on small" in out
    rows = json.loads((tmp_path / "results" / "multi" / "leaderboard.json").read_text())
    assert sorted((r["dataset"], r["n_test"]) for r in rows) == [("large", 15), ("small", 9)]


def test_untuned_models_fit_once_and_repeated_params_are_not_refitted(tmp_path, monkeypatch):
    from toy_plugin import VectorCentroids

    fits, real_fit = {"n": 0}, VectorCentroids.fit

    def counting_fit(self, *args, **kwargs):
        fits["n"] += 1
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(VectorCentroids, "fit", counting_fit)
    cfg = _config(tmp_path, **{})
    text = cfg.read_text().replace('models = ["vector_centroids", "centroids"]', 'models = ["vector_centroids"]')
    text += "[settings.vector_centroids]\ntune = false\n"
    cfg.write_text(text.replace("trials = 2", "trials = 5"))
    assert main(["run", str(cfg), "--only", "*/identity/*"]) == 0
    assert fits["n"] == 2  # one fit per seed, not five

    fits["n"] = 0
    narrow = cfg.read_text().replace("tune = false", "space = { temperature = [1.0], standardize = [true] }")
    cfg.write_text(narrow)
    assert main(["run", str(cfg), "--only", "*/identity/*"]) == 0
    assert fits["n"] == 2  # five trials per seed, all but the first repeat it


def test_explain_shows_the_critical_points_of_a_trained_pointnet(tmp_path, capsys):
    cfg = tmp_path / "pn.toml"
    cfg.write_text(
        'plugins = ["toy_plugin"]\ntasks = ["toy_system"]\nrepresentations = ["corners"]\n'
        'perturbations = ["identity"]\nmodels = ["pointnet", "random_forest"]\n'
        '[dataset]\nname = "toy"\n[settings.pointnet]\ntune = false\nmax_epochs = 2\n'
        "[run]\ntrials = 1\nseeds = [0]\nworkers = 1\n"
    )
    assert main(["run", str(cfg)]) == 0
    capsys.readouterr()
    assert main(["explain", str(cfg), "toy_system/corners/identity/pointnet", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "critical points" in out and out.count("toy-") == 2
    assert main(["explain", str(cfg), "nothing/*"]) == 2
