"""A run, its resume and `harness explain` need no built-in plugin: the toy plugin's
dataset, task, representations, perturbation and numpy model are enough."""

import json

from harness.cli import main

CONFIG = """
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["ratios", "corners"]
perturbations = ["identity"]
models = ["centroids"]
[dataset]
name = "toy"
[settings.centroids]
space = {{ standardize = [true] }}
[run]
trials = 3
seeds = [0, 1]
workers = {workers}
results = "out"
"""


def test_toy_entries_run_resume_and_explain(tmp_path, capsys):
    cfg = tmp_path / "toy.toml"
    cfg.write_text(CONFIG.format(workers=2))
    assert main(["run", str(cfg)]) == 0
    rows = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert {(r["dataset"], r["representation"], r["perturbation"], r["model"]) for r in rows} == {
        ("toy", "ratios(scale=2)", "identity", "centroids"),
        ("toy", "corners", "identity", "centroids"),
    }
    assert all(r["n_seeds"] == 2 for r in rows)
    assert rows[0]["representation"] == "ratios(scale=2)" and rows[0]["mean"] > 0.9  # c/a tells them apart
    capsys.readouterr()

    assert main(["run", str(cfg)]) == 0
    assert "4 already done, 0 to run" in capsys.readouterr().out

    assert main(["explain", str(cfg), "toy_system/corners/identity/centroids", "--limit", "2"]) == 0
    out = capsys.readouterr().out
    assert "critical points" in out and out.count("toy-") == 2
