"""Fault injection: real `harness run` processes killed and interrupted at random points.

After every fault a rerun must finish every study, with scores and chosen parameters equal
to an uninterrupted run's to the last digit, no process left behind, and exactly the
requested number of finished trials per study in the store.
"""

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from servers import N_STUDIES, run_env, toy_config

pytestmark = pytest.mark.slow

TRIALS = 4
CONFIG = toy_config(TRIALS, workers=2, size=160)


def _env(tmp_path: Path) -> dict:
    return run_env(tmp_path, claim_ttl=10)  # long enough for a loaded CI machine; a rerun waits it out


def _start(folder: Path, tmp_path: Path, *extra: str) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "bench.toml"
    cfg.write_text(CONFIG)
    return subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", str(cfg), *extra],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _run(folder: Path, tmp_path: Path) -> str:
    p = _start(folder, tmp_path)
    out, _ = p.communicate(timeout=600)
    assert p.returncode == 0, out.decode()
    return out.decode()


def _outcome(folder: Path) -> dict:
    """unit -> (test value, chosen parameters, validation value): what must match to the digit."""
    db = sqlite3.connect(folder / "out" / "results.sqlite")
    rows = db.execute("SELECT unit, value, valid_value, body FROM harness_results WHERE superseded = 0").fetchall()
    return {u: (v, vv, json.loads(b)["params"]) for u, v, vv, b in rows}


def _finished_trials(folder: Path) -> dict:
    db = sqlite3.connect(folder / "out" / "results.sqlite")
    rows = db.execute(
        "SELECT s.study_name, COUNT(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
        "WHERE t.state IN ('COMPLETE', 'PRUNED') GROUP BY s.study_name"
    ).fetchall()
    return dict(rows)


def _wait_for_results(folder: Path, proc: subprocess.Popen, at_least: int, timeout: float = 300) -> None:
    db = folder / "out" / "results.sqlite"
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None:
            return
        try:
            n = sqlite3.connect(db, timeout=5).execute("SELECT COUNT(*) FROM harness_results").fetchone()[0]
            if n >= at_least:
                return
        except sqlite3.Error:
            pass
        time.sleep(0.1)


def _all_gone(pids: list[int], timeout: float = 10) -> bool:
    t0 = time.time()
    while time.time() - t0 < timeout:
        alive = [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: the numbers every faulted run must reproduce."""
    tmp = tmp_path_factory.mktemp("reference")
    _run(tmp / "uncut", tmp)
    outcome = _outcome(tmp / "uncut")
    assert len(outcome) == N_STUDIES
    return outcome


def _check(folder: Path, reference: dict) -> None:
    assert _outcome(folder) == reference
    assert sorted(_finished_trials(folder).values()) == [TRIALS] * N_STUDIES


@pytest.mark.parametrize("how", ["sigkill-driver", "sigint-group", "sigkill-worker"])
def test_a_run_cut_anywhere_finishes_on_rerun_with_identical_numbers(tmp_path, reference, how):
    rng = random.Random(how)
    folder = tmp_path / "cut"
    proc = _start(folder, tmp_path)
    _wait_for_results(folder, proc, at_least=rng.randint(0, 2))
    time.sleep(rng.uniform(0.0, 1.0))  # somewhere inside a study
    driver = psutil.Process(proc.pid)
    children = [c.pid for c in driver.children(recursive=True)]
    if how == "sigkill-driver":
        os.kill(proc.pid, signal.SIGKILL)
    elif how == "sigint-group":  # Ctrl-C in a terminal reaches the whole process group
        os.killpg(proc.pid, signal.SIGINT)
    else:
        if children:
            os.kill(children[0], signal.SIGKILL)
    proc.communicate(timeout=120)
    assert _all_gone([proc.pid, *children]), "a worker outlived its run"
    _run(folder, tmp_path)
    _check(folder, reference)


def test_two_runs_on_one_folder_divide_the_studies(tmp_path, reference):
    folder = tmp_path / "shared"
    a = _start(folder, tmp_path)
    b = _start(folder, tmp_path)
    out_a, _ = a.communicate(timeout=600)
    out_b, _ = b.communicate(timeout=600)
    assert a.returncode == 0 and b.returncode == 0, (out_a.decode(), out_b.decode())
    done_a = out_a.decode().count("  done ")
    done_b = out_b.decode().count("  done ")
    assert done_a + done_b == N_STUDIES  # no study ran twice
    _check(folder, reference)
    board_a = (folder / "out" / "leaderboard.json").read_text()
    assert len(json.loads(board_a)) == 2
