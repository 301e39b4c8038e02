"""The engine's third fault battery (issue 20): damaged result rows, bad probabilities,
tied trials, read-only results, damaged or hostile model blobs, a study's timeout, a
stalled driver, a truncated symmetry cache, filesystem problems outside `run`."""

from __future__ import annotations

import io
import json
import logging
import os
import sqlite3
import stat
import tarfile
from pathlib import Path

import pytest
from servers import postgres  # noqa: F401  (the PostgreSQL server fixture)

from harness.cli import main
from harness.services.store import Store

TOY = """
plugins = ["toy_plugin", "fault_models"]
tasks = ["toy_system"]
representations = ["ratios"]
perturbations = ["identity"]
models = {models}
[dataset]
name = "toy"
size = 60
[run]
trials = {trials}
seeds = {seeds}
workers = 1
results = "{results}"
{extra}
"""


def _config(tmp_path: Path, models=("centroids",), trials: int = 2, extra: str = "", seeds=(0,)) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cfg = tmp_path / "bench.toml"
    cfg.write_text(
        TOY.format(
            models=json.dumps(list(models)), trials=trials, results=tmp_path / "out", extra=extra, seeds=list(seeds)
        )
    )
    return cfg


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'out' / 'results.sqlite'}"


@pytest.fixture
def toy_run(tmp_path):
    cfg = _config(tmp_path, seeds=(0, 1))
    assert main(["run", str(cfg)]) == 0
    return cfg


def _set_body(tmp_path: Path, body: str) -> str:
    db = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    (key,) = db.execute("SELECT key FROM harness_results").fetchone()
    db.execute("UPDATE harness_results SET body = ? WHERE key = ?", (body, key))
    db.commit()
    db.close()
    return key


# ------------------------------------------------------------------ 2: damaged result row
@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '{"extra": "high", "params": {}}', '{"params": 3}'])
def test_a_damaged_result_row_is_skipped_with_a_warning_and_recomputed(tmp_path, toy_run, capsys, caplog, body):
    import harness.services.store

    harness.services.store._warned.clear()
    key = _set_body(tmp_path, body)
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="harness"):
        assert main(["leaderboard", str(tmp_path / "out"), "--format", "json"]) == 0
        assert main(["report", str(tmp_path / "out"), "--out", str(tmp_path / "report" / "index.html")]) == 0
        assert (
            main(["--plugin", "toy_plugin", "predict", str(tmp_path / "out"), "--dataset", "toy", "--format", "json"])
            == 0
        )
    warned = [r.getMessage() for r in caplog.records if "damaged" in r.getMessage()]
    assert len(warned) == 1 and key[:12] in warned[0] and "toy" in warned[0]  # names the row, once
    assert key not in Store(_url(tmp_path)).done_keys()  # not done: recomputed by the next run
    capsys.readouterr()
    assert main(["run", str(toy_run)]) == 0
    out = capsys.readouterr().out
    assert "1 already done, 1 to run" in out
    (result,) = Store(_url(tmp_path)).results({key})
    assert result.params  # the row is whole again
    assert (
        main(["--plugin", "toy_plugin", "predict", str(tmp_path / "out"), "--dataset", "toy", "--format", "json"]) == 0
    )


# ------------------------------------------------------------------ 6: bad probabilities
@pytest.mark.parametrize("model", ["nan_model", "short_model"])
def test_bad_probabilities_fail_the_trial_and_the_study_is_never_ranked(tmp_path, capsys, caplog, model):
    cfg = _config(tmp_path, models=[model, "centroids"], trials=2)
    with caplog.at_level(logging.WARNING, logger="harness"):
        assert main(["run", str(cfg)]) == 1
    captured = capsys.readouterr()
    out = captured.out + captured.err
    named = [r.getMessage() for r in caplog.records if f"model '{model}' returned" in r.getMessage()]
    assert len(named) == 1  # one line names the model (the same cause is not repeated per trial)
    assert f"model '{model}' returned" in out  # and the study's failure line says it too
    assert "Traceback" not in out and "Trial 0 failed" not in out  # no Optuna traceback
    results = list(Store(_url(tmp_path)).results())
    assert [r.model for r in results] == ["centroids"]  # the bad model is never ranked
    board = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert model not in json.dumps(board)


# ------------------------------------------------------------------ 8: ties
def _study_of(key, storage):
    """The Optuna study of a result, found by the key it carries as an attribute."""
    import optuna

    (name,) = [s.study_name for s in optuna.get_all_study_summaries(storage) if s.user_attrs.get("key") == key]
    return optuna.load_study(study_name=name, storage=storage)


def test_tied_trials_choose_the_lowest_trial_number(tmp_path):

    cfg = _config(tmp_path, models=["tied"], trials=6)
    assert main(["run", str(cfg)]) == 0
    (result,) = Store(_url(tmp_path)).results()
    study = _study_of(result.key, Store(_url(tmp_path)).optuna_storage())
    values = {t.number: t.value for t in study.trials}
    assert len(set(values.values())) == 1  # all tied
    first = min(study.trials, key=lambda t: t.number)
    assert result.params == first.params


def test_best_trial_breaks_ties_by_number_whatever_order_the_store_returns():
    import optuna

    from harness.execute.study import best_trial

    study = optuna.create_study(direction="maximize")
    for x in (0.5, 0.9, 0.9, 0.1, 0.9):
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=x))

    class Reversed:
        def get_trials(self, deepcopy=False, states=None):
            return list(reversed(study.get_trials(deepcopy=False, states=states)))

    assert best_trial(Reversed()).number == 1
    assert best_trial(study).number == 1


# ------------------------------------------------------------------ 3: read-only results
def _as_reader(cmd: list[str]) -> list[str]:
    """Root writes anywhere: drop the capability that lets it, so permissions count."""
    import shutil

    if os.geteuid() == 0:
        if not shutil.which("setpriv"):
            pytest.skip("running as root without setpriv: a read-only folder cannot be made")
        return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", *cmd]
    return cmd


def _read_only(folder: Path) -> None:
    for p in [*folder.rglob("*"), folder]:
        p.chmod(p.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


def test_a_read_only_results_folder_can_be_read(tmp_path, toy_run):
    import shutil
    import subprocess
    import sys

    from servers import run_env

    db = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    out = tmp_path / "copy"  # without -wal/-shm files: the hard case
    shutil.copytree(tmp_path / "out", out, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    _read_only(out)
    env = run_env(tmp_path)
    try:
        for args in (
            ["leaderboard", str(out), "--format", "json"],
            ["--plugin", "toy_plugin", "predict", str(out), "--dataset", "toy", "--format", "json"],
            ["report", str(out), "--out", str(tmp_path / "elsewhere" / "index.html")],
        ):
            done = subprocess.run(
                _as_reader([sys.executable, "-m", "harness.cli", *args]),
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, done.stderr
            assert "Traceback" not in done.stderr
        assert json.loads(
            subprocess.run(
                _as_reader([sys.executable, "-m", "harness.cli", "leaderboard", str(out), "--format", "json"]),
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            ).stdout
        )
        assert (tmp_path / "elsewhere" / "index.html").is_file()
    finally:
        for p in [out, *out.rglob("*")]:
            p.chmod(p.stat().st_mode | stat.S_IWUSR)


# ------------------------------------------------------------------ 9, 10: model blobs
def _tar(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=1) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buf.getvalue()


def _set_blob(tmp_path: Path, blob: bytes) -> None:
    db = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    db.execute("UPDATE harness_models SET blob = ?", (blob,))
    db.commit()
    db.close()


@pytest.mark.parametrize(
    "blob",
    [
        b"not a tar at all",
        _tar({"model.json": b"{broken"}),
        _tar({"model.json": b'{"name": "centroids", "params": {}}'}),  # no state
        _tar({"model.json": b'{"name": "centroids", "params": {}}'}, links={"state": "/etc"}),
        _tar({"../escape.json": b"{}"}),
    ],
    ids=["garbage", "bad-json", "no-state", "symlink", "traversal"],
)
def test_a_damaged_or_hostile_model_blob_is_one_line_exit_2(tmp_path, toy_run, capsys, blob):
    _set_blob(tmp_path, blob)
    capsys.readouterr()
    code = main(["--plugin", "toy_plugin", "predict", str(tmp_path / "out"), "--dataset", "toy", "--format", "json"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "stored model of study toy:" in err
    assert "harness-model-" not in err  # never names the deleted temporary folder


def test_a_tar_bomb_is_refused_before_it_fills_the_disk_and_leaves_nothing(tmp_path, monkeypatch):
    import tempfile

    from harness.execute import persist

    from harness.services import registry
    from harness.services.errors import UserError

    monkeypatch.setattr(persist, "MIN_BYTES", 2**20)  # 1 MiB floor, so the bomb can be small
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    bomb = _tar({"model.json": b'{"name": "centroids", "params": {}}', "state/a.bin": bytes(64 * 2**20)})
    assert len(bomb) * persist.MAX_RATIO < 64 * 2**20  # inflates more than the bound allows
    with pytest.raises(UserError, match="tar bomb"):
        persist.restore(registry.load(["toy_plugin"]), (persist.FORMAT, bomb))
    assert not list(scratch.iterdir())  # nothing written is left behind
    many = _tar({f"state/{i}": b"" for i in range(persist.MAX_MEMBERS + 1)})
    with pytest.raises(UserError, match="files"):
        persist.restore(registry.load(["toy_plugin"]), (persist.FORMAT, many))
    assert not list(scratch.iterdir())


# ------------------------------------------------------------------ 7: a study's timeout
def test_a_study_timeout_stops_a_fit_that_would_not_end_and_the_run_goes_on(tmp_path, capsys, caplog):
    import time

    import fault_models

    cfg = _config(tmp_path, models=["sleepy", "centroids"], trials=3, extra="timeout = 3")
    fault_models.Sleepy.fits.clear()  # the first fit is quick, the second would take 600 s
    t0 = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="harness"):
        assert main(["run", str(cfg)]) == 0
    assert time.monotonic() - t0 < 120
    assert "Traceback" not in capsys.readouterr().out
    assert any("timeout of 3 s struck during this fit" in r.getMessage() for r in caplog.records)
    results = {r.model: r for r in Store(_url(tmp_path)).results()}
    assert set(results) == {"sleepy", "centroids"}  # the run went on
    assert results["sleepy"].n_trials == 1  # the finished trial is kept and scored

    # A study whose first fit never returns: no trial, it fails alone, unranked.
    cfg = _config(tmp_path / "second", models=["sleepy", "centroids"], trials=3, extra="timeout = 2")
    fault_models.Sleepy.fits.append(1)
    assert main(["run", str(cfg)]) == 1
    out = capsys.readouterr().out
    assert "no valid trial" in out and "timeout of 2 s" in out
    assert {r.model for r in Store(_url(tmp_path / "second")).results()} == {"centroids"}


# ------------------------------------------------------------------ 13: a stalled driver
def test_a_driver_stalled_past_its_claim_says_the_study_was_taken_over(tmp_path):
    from rich.console import Console

    from harness import runner
    from harness.services.store import CLAIMS
    from harness.execute.study import Environment, StudySpec

    store = Store(f"sqlite:///{tmp_path / 'results.sqlite'}")
    spec = StudySpec(
        key="k" * 16, unit="toy:a/b/c/d#0", dataset="toy", combination=None, seed=0, trials=1, timeout=None
    )

    class Stalled:
        """The study's process was stopped past the claim TTL; another run took the claim
        over and Optuna's trial state changed under it."""

        def run(self, next_study, env):
            got = next_study()
            with store.engine.begin() as db:
                db.execute(CLAIMS.update().values(owner="other-run", heartbeat=0.0))
            yield got, AssertionError("Should not reach.")

    console = Console(file=io.StringIO(), width=200)
    failures = runner.execute([spec], store, Stalled(), Environment(store.url), console)
    out = console.file.getvalue()
    assert failures == 0, out
    assert "taken over" in out and "AssertionError" not in out
    assert store.claims()[spec.key][0] == "other-run"  # its claim is left to the run that holds it


# ------------------------------------------------------------------ 5: symmetry cache
@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_spacegroup_cache_is_removed_and_refilled(tmp_path, caplog, damage):
    from harness_plugins.tasks import symmetry_labels
    from pymatgen.core import Lattice, Structure

    from harness import Material

    mg = Structure(Lattice.hexagonal(3.21, 5.21), ["Mg", "Mg"], [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]])
    material = Material("mg", mg, {}, content_hash=b"mg-hash")
    path = tmp_path / "symmetry" / "spacegroups.sqlite"
    cache = symmetry_labels.SpacegroupCache(path)
    assert cache.number(material, 0.1) == 194
    cache.flush()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3] if damage == "truncate" else b"\x00garbage" * 500)
    with caplog.at_level(logging.WARNING):
        again = symmetry_labels.SpacegroupCache(path)  # as the next run would
        assert again.number(material, 0.1) == 194
        again.flush()
    assert any("damaged cache file" in r.getMessage() for r in caplog.records)
    rows = sqlite3.connect(path).execute("SELECT number FROM spacegroups").fetchall()
    assert rows == [(194,)]  # refilled


# ------------------------------------------------------------------ 12: filesystem outside run
def test_filesystem_problems_outside_run_are_one_line_exit_2(tmp_path, toy_run, capsys):
    import subprocess
    import sys

    from servers import run_env

    long = tmp_path / ("x" * 300)
    for argv in (
        ["leaderboard", str(long)],
        ["report", str(long)],
        ["predict", str(long), "--dataset", "toy"],
        ["report", str(tmp_path / "out"), "--out", str(long / "index.html")],
    ):
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "name too long" in err.lower(), err
    locked = tmp_path / "locked"
    locked.mkdir()
    _read_only(locked)
    done = subprocess.run(
        _as_reader(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "report",
                str(tmp_path / "out"),
                "--out",
                str(locked / "report" / "index.html"),
            ]
        ),
        env=run_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "Permission denied" in done.stderr


# ------------------------------------------------------------------ 14: engine's smaller ones
@pytest.mark.parametrize("models", [["no_such_model"], ["centroids"]])
def test_an_unknown_name_fails_before_the_results_folder_is_made(tmp_path, capsys, models):
    cfg = _config(tmp_path, models=models)
    if models == ["centroids"]:
        cfg.write_text(cfg.read_text().replace('name = "toy"', 'name = "no_such_dataset"'))
    assert main(["run", str(cfg)]) == 2
    assert "no_such" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_library_warnings_stay_out_of_the_run_output_as_one_summary_line(tmp_path, capsys, caplog):
    cfg = _config(tmp_path, models=["warns"], trials=2)
    with caplog.at_level(logging.INFO, logger="harness"):
        assert main(["run", str(cfg)]) == 0
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "fault_models.py:" not in text and "warnings.warn(" not in text  # no raw warning
    (record,) = [r.getMessage() for r in caplog.records if "warnings from the model's libraries" in r.getMessage()]
    assert "10 warnings" in record and "UserWarning: The least populated class" in record


@pytest.mark.slow
def test_tied_trials_on_postgresql_choose_the_lowest_trial_number(tmp_path, postgres):  # noqa: F811
    """PostgreSQL returns tied rows in physical order, which an UPDATE (as a resumed run
    makes) changes: Optuna's own best trial then is a later one; the harness's is not."""
    import optuna
    import sqlalchemy as sa

    from harness.execute.study import best_trial

    store = Store(postgres.new_database())
    study = optuna.create_study(study_name="tied", storage=store.optuna_storage(), direction="maximize")
    for x in (0.5, 0.9, 0.9, 0.9, 0.1):
        study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=x))
    with store.engine.begin() as db:  # rewrite trial 1's value row: it moves behind the others
        db.execute(
            sa.text(
                "UPDATE trial_values SET value = value WHERE trial_id = (SELECT trial_id FROM trials WHERE number = 1)"
            )
        )
    storage_pick = study.best_trial.number
    assert best_trial(study).number == 1, f"the storage itself picked trial {storage_pick}"

    # End to end: a run on PostgreSQL whose trials all tie stores trial 0's parameters.
    cfg = _config(tmp_path, models=["tied"], trials=6)
    url = postgres.new_database()
    assert main(["run", str(cfg), "--storage", url]) == 0
    (result,) = Store(url).results()
    tied = _study_of(result.key, Store(url).optuna_storage())
    assert result.params == min(tied.trials, key=lambda t: t.number).params
