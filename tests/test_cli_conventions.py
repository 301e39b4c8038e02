"""The conventions a command line is expected to follow: --version, -q, a run log,
`harness init`, `harness plan` (computing and writing nothing), plugins by path or from
the current folder, an ETA from the first finished item, tables readable at 80 columns."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from harness.services import config
from harness.cli import main

HERE = Path(__file__).parent

TOY = """
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["ratios", "corners"]
perturbations = ["identity"]
models = ["centroids"]
[dataset]
name = "toy"
size = 60
[run]
trials = 2
seeds = [0, 1]
workers = 1
results = "{results}"
"""


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--version"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("harness ")


def test_init_writes_a_valid_commented_starter_and_never_overwrites(tmp_path, capsys):
    path = tmp_path / "bench.toml"
    assert main(["init", str(path)]) == 0
    text = path.read_text()
    assert text.count("#") > 20  # commented
    conf = config.load(path)
    assert conf.tasks and conf.models and conf.datasets[0].name == "demo"
    assert main(["init", str(path)]) == 2
    assert "exists" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["plan", str(path), "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert {s["status"] for s in found["studies"]} == {"pending"}
    assert not (tmp_path / "results").exists()  # plan writes nothing


def _plan(capsys, cfg, *extra) -> dict:
    capsys.readouterr()
    assert main(["plan", str(cfg), "--format", "json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_lists_done_pending_and_superseded_without_writing(tmp_path, capsys):
    out = tmp_path / "out"
    cfg = tmp_path / "toy.toml"
    cfg.write_text(TOY.format(results=out))
    before = _plan(capsys, cfg)
    assert [s["status"] for s in before["studies"]] == ["pending"] * 4
    assert before["needs"][0]["featurise"] == ["corners", "ratios(scale=2)"] and before["needs"][0]["fits"] == 8
    assert not out.exists()
    assert main(["-q", "run", str(cfg)]) == 0
    quiet = capsys.readouterr()
    assert quiet.out == ""  # -q: nothing on the terminal ...
    log = (out / "run.log").read_text()  # ... and everything in the run log
    assert "done toy:toy_system/corners/identity/centroids#1" in log and "leaderboard written" in log
    after = _plan(capsys, cfg)
    assert [s["status"] for s in after["studies"]] == ["done"] * 4 and after["needs"] == []
    changed = _plan(capsys, cfg, "--trials", "3")
    assert [s["status"] for s in changed["studies"]] == ["pending"] * 4 and len(changed["superseded"]) == 4
    from harness.services.store import Store

    assert len(list(Store(f"sqlite:///{out}/results.sqlite").results())) == 4  # plan superseded nothing


def test_plugin_by_path_and_from_the_current_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setitem(sys.modules, "my_toy", None)  # removed again after the test
    del sys.modules["my_toy"]
    shutil.copy(HERE / "toy_plugin.py", tmp_path / "my_toy.py")
    monkeypatch.chdir(tmp_path)
    assert main(["--plugin", "./my_toy.py", "list", "dataset"]) == 0
    assert "my_toy" in capsys.readouterr().out
    sys.modules.pop("my_toy", None)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    assert main(["--plugin", "my_toy", "list", "dataset"]) == 0
    assert "my_toy" in capsys.readouterr().out
    assert main(["--plugin", "./nothing.py", "list"]) == 2
    assert "no such file" in capsys.readouterr().err


def test_eta_appears_once_one_item_finished():
    from harness.services.progress import EtaColumn

    column = EtaColumn()
    task = SimpleNamespace(finished=False, total=45, completed=0, elapsed=60.0)
    assert "-:--" in column.render(task).plain
    task.completed = 1  # one study in a minute: 44 minutes left
    assert column.render(task).plain == "eta 0:44:00"


def test_leaderboard_at_80_columns_cuts_nothing():
    from harness.report import leaderboard

    row = {
        "dataset": "demo",
        "task": "crystal_system",
        "representation": "barcode(n=27,cell=conventional)",
        "perturbation": "systematic_absence",
        "model": "attention_pool",
        "metric": "accuracy",
        "mean": 0.5,
        "std": 0.01,
        "ci_low": 0.4,
        "ci_high": 0.6,
        "ci_method": "bootstrap",
        "vs_best": "best",
        "p_vs_best": None,
        "n_seeds": 3,
        "n_test": 480,
        "balanced_accuracy_mean": 0.4,
        "balanced_accuracy_std": 0.02,
    }
    console = Console(width=80, record=True, file=io.StringIO())
    leaderboard.render([row], console)
    text = console.export_text()
    assert "…" not in text and max(len(line) for line in text.splitlines()) <= 80
    flat = "".join(text.split())
    for name in ("systematic_absence", "attention_pool", "balanced_accuracy", "0.500±0.010"):
        assert name in flat


def test_predict_without_the_plugin_says_it_is_not_loaded(tmp_path, capsys):
    out = tmp_path / "out"
    cfg = tmp_path / "toy.toml"
    cfg.write_text(TOY.format(results=out).replace("seeds = [0, 1]", "seeds = [0]"))
    assert main(["-q", "run", str(cfg)]) == 0
    cif = tmp_path / "fe.cif"
    from pymatgen.core import Lattice, Structure

    Structure(Lattice.cubic(3.0), ["Fe"], [[0, 0, 0]]).to(filename=str(cif))
    capsys.readouterr()
    assert main(["predict", str(out), str(cif)]) == 2
    err = capsys.readouterr().err
    assert "whose plugin is not loaded" in err and "--plugin" in err and "unknown" not in err


def test_list_task_names_the_properties_each_task_reads(capsys):
    from harness.services import registry

    assert main(["list", "task"]) == 0
    flat = " ".join(capsys.readouterr().out.split())
    tasks = registry.load().entries["task"]
    for name, entry in tasks.items():
        for key in entry.cls.reads:
            assert key in flat, (name, key)
    assert "e_above_hull" in flat and "k_vrh" in flat  # in no description: only the reads column says it


def test_explain_reads_the_store_given_by_storage(tmp_path, capsys):
    cfg = tmp_path / "toy.toml"
    cfg.write_text(
        TOY.format(results=tmp_path / "out")
        .replace("seeds = [0, 1]", "seeds = [0]")
        .replace('"ratios", "corners"', '"corners"')
    )
    url = f"sqlite:///{tmp_path / 'shared.sqlite'}"
    assert main(["-q", "run", str(cfg), "--storage", url]) == 0
    capsys.readouterr()
    assert main(["explain", str(cfg), "toy_system/corners/*/centroids", "--storage", url, "--limit", "2"]) == 0
    assert "toy-" in capsys.readouterr().out  # test materials explained
    assert (
        main(["explain", str(cfg), "toy_system/corners/*/centroids", "--limit", "2"]) == 2
    )  # the folder's own store is empty


def test_bars_in_a_pipe_say_when_each_step_starts():
    import io

    from harness.services.progress import progress_bar

    out = io.StringIO()
    with progress_bar(Console(file=out, width=100)) as bar:
        task = bar.add_task("featurising barcode", total=3)
        bar.advance(task, 3)
    first = out.getvalue().splitlines()[0]
    assert first == "featurising barcode: 0/3 ..."


def test_verbose_turns_on_debug_messages(capsys):
    import logging

    loggers = [logging.getLogger(n) for n in ("harness", "harness_plugins")]
    levels = [lg.level for lg in loggers]
    try:
        assert main(["-v", "list", "perturbation"]) == 0
        assert all(lg.level == logging.DEBUG for lg in loggers)
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
