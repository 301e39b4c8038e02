"""A PostgreSQL store shared by many runs: a real server, real `harness run` processes.

Several drivers on one database divide the studies (no study runs twice) and reproduce a
local SQLite run's numbers to the last digit; the leaderboard reads from the database; a
server that goes away mid-run loses no finished result; a server that is not there is one
line naming host, port and database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from harness.cli import main
from harness.store import Store
from servers import Postgres, free_port, postgres  # noqa: F401 - fixture

TRIALS = 3
CONFIG = f"""
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["ratios"]
perturbations = ["identity", {{name = "noise", sigma = 0.3}}]
models = ["random_forest"]
[dataset]
name = "toy"
size = 120
[run]
trials = {TRIALS}
workers = 1
seeds = [0, 1, 2]
results = "out"
"""
N_STUDIES = 2 * 3
TESTS = Path(__file__).parent


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    env["HARNESS_CLAIM_TTL"] = "3"
    env["HARNESS_POLL_SECONDS"] = "0.5"
    env.setdefault("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    return env


def start_run(folder: Path, tmp_path: Path, *extra: str, config: str = CONFIG,
              env: dict | None = None) -> subprocess.Popen:
    folder.mkdir(parents=True, exist_ok=True)
    cfg = folder / "bench.toml"
    cfg.write_text(config)
    return subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(cfg), *extra],
                            env=env or _env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out.decode()
    return out.decode()


def outcome(url: str) -> dict:
    """unit -> (test value, validation value, chosen parameters): equal to the digit or not at all."""
    return {r.unit: (r.value, r.valid_value, r.params) for r in Store(url).results()}


def finished_trials(url: str) -> dict:
    with sa.create_engine(Store(url).url).connect() as db:
        rows = db.execute(sa.text(
            "SELECT s.study_name, COUNT(*) FROM trials t JOIN studies s ON s.study_id = t.study_id "
            "WHERE t.state IN ('COMPLETE', 'PRUNED') GROUP BY s.study_name")).fetchall()
    return dict(rows)


def sqlite_url(folder: Path) -> str:
    return f"sqlite:///{folder / 'out' / 'results.sqlite'}"


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One local run on SQLite: the numbers every run on PostgreSQL must give."""
    tmp = tmp_path_factory.mktemp("reference")
    finish(start_run(tmp / "local", tmp))
    got = outcome(sqlite_url(tmp / "local"))
    assert len(got) == N_STUDIES
    return got


def test_an_unreachable_database_is_one_line_naming_host_port_database_and_the_fix(tmp_path, capsys):
    port = free_port()  # nothing listens there
    cfg = tmp_path / "bench.toml"
    cfg.write_text(CONFIG)
    code = main(["run", str(cfg), "--storage", f"postgresql://harness:secret@127.0.0.1:{port}/bench"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1, err
    assert f"host 127.0.0.1, port {port}, database 'bench'" in err
    assert "check that the server runs" in err
    assert "secret" not in err and "Traceback" not in err


def test_a_missing_database_says_how_to_create_it(postgres, capsys):
    code = main(["leaderboard", "--storage", postgres.url("no_such_db")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "createdb" in err and "no_such_db" in err


@pytest.mark.slow
def test_two_drivers_on_one_database_divide_the_studies_and_match_a_local_run(tmp_path, postgres, reference, capsys):
    url = postgres.new_database()
    a = start_run(tmp_path / "a", tmp_path, "--storage", url)
    b = start_run(tmp_path / "b", tmp_path, "--storage", url)
    out_a, out_b = finish(a), finish(b)
    done = out_a.count("  done ") + out_b.count("  done ")
    assert done == N_STUDIES, (out_a, out_b)  # every study ran, none twice
    assert out_a.count("  done ") and out_b.count("  done "), "one driver did all the work"
    assert outcome(url) == reference
    assert sorted(finished_trials(url).values()) == [TRIALS] * N_STUDIES
    # `harness leaderboard --storage URL` reads the shared database: the drivers' table
    capsys.readouterr()
    assert main(["leaderboard", "--storage", url, "--format", "json"]) == 0
    board = json.loads(capsys.readouterr().out)
    written = json.loads((tmp_path / "a" / "out" / "leaderboard.json").read_text())
    assert board == written and len(board) == 2


@pytest.mark.slow
def test_a_server_lost_mid_run_loses_no_finished_result(tmp_path, postgres, reference):
    url = postgres.new_database()
    proc = start_run(tmp_path / "cut", tmp_path, "--storage", url)
    t0 = time.time()
    while time.time() - t0 < 300 and proc.poll() is None and len(outcome(url)) < 2:
        time.sleep(0.2)
    before = outcome(url)
    assert proc.poll() is None and len(before) >= 2, "the run ended before the server could be stopped"
    postgres.stop("immediate")  # every connection cut, as by a crash or a network failure
    try:
        time.sleep(2.0)
    finally:
        postgres.start()
    out, _ = proc.communicate(timeout=600)
    text = out.decode()
    assert "Traceback" not in text, text
    if proc.returncode != 0:  # a study whose trials could not be written failed: one clear line
        assert proc.returncode in (1, 2), text
    after = outcome(url)
    assert {u: after[u] for u in before} == before  # what was finished is still there
    finish(start_run(tmp_path / "cut", tmp_path, "--storage", url))
    assert outcome(url) == reference
    assert sorted(finished_trials(url).values()) == [TRIALS] * N_STUDIES
