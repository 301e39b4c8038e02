"""A PostgreSQL store shared by many runs: a real server, real `harness run` processes.

Several drivers on one database divide the studies (no study runs twice) and reproduce a
local SQLite run's numbers to the last digit; the leaderboard reads from the database; a
server that goes away mid-run loses no finished result; a server that is not there is one
line naming host, port and database."""

from __future__ import annotations

import json
import time

import pytest

from harness.cli import main
from servers import (
    CONFIG,
    N_STUDIES,
    TRIALS,
    finish,
    finished_trials,
    free_port,
    outcome,
    postgres,  # noqa: F401
    reference,
    reference_run,
    start_run,
)


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
    print(f"run through the outage: exit {proc.returncode}; {text.strip().splitlines()[-1]}")
    after = outcome(url)
    assert {u: after[u] for u in before} == before  # what was finished is still there
    finish(start_run(tmp_path / "cut", tmp_path, "--storage", url))
    assert outcome(url) == reference
    assert sorted(finished_trials(url).values()) == [TRIALS] * N_STUDIES
