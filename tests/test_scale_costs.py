"""Issue 22, what a run no longer pays for: rows trusted by their checksum column, a
study stored without its model and refitted exactly by predict, an unchanged leaderboard
figure, scattering tables without pymatgen's diffraction module. (The forest's stored form:
test_forest_arrays.py.)"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sqlalchemy as sa

from harness.services import store as store_module
from harness.services.store import Store, UnitResult
from servers import postgres  # noqa: F401  (the PostgreSQL server fixture)


def _result(i: int) -> UnitResult:
    n = 300
    return UnitResult(
        unit=f"d:t/r/p/m#{i}",
        key=f"k{i:03d}",
        dataset="d",
        task="t",
        representation="r",
        perturbation="p",
        model="m",
        seed=i,
        metric="roc_auc",
        value=0.5 + i / 100,
        valid_value=float("nan"),
        params={"n": i},
        extra={"accuracy": 0.25},
        predictions={"ids": [str(j) for j in range(n)], "y": [j % 2 for j in range(n)], "proba": [[0.3, 0.7]] * n},
    )


@pytest.fixture
def parses(monkeypatch):
    calls = []
    real = store_module._parse
    monkeypatch.setattr(store_module, "_parse", lambda row: calls.append(row["key"]) or real(row))
    return calls


def _drop_checksums(url: str) -> None:
    """The store as an older version left it: no checksum column."""
    engine = sa.create_engine(store_module.with_driver(url))
    with engine.begin() as db:
        db.execute(sa.text("ALTER TABLE harness_results DROP COLUMN checksum"))
    engine.dispose()


def test_done_keys_reads_checksums_not_bodies(tmp_path, parses):
    store = Store(f"sqlite:///{tmp_path}/r.sqlite")
    for i in range(20):
        assert store.add(_result(i))
    assert store.done_keys() == {f"k{i:03d}" for i in range(20)}
    assert store.done_keys(["k003", "nope"]) == {"k003"}
    assert parses == []  # no body parsed to decide what is done
    assert len(list(store.results())) == 20


def test_a_row_changed_after_its_checksum_is_validated_and_a_damaged_one_is_not_done(tmp_path, parses):
    store = Store(f"sqlite:///{tmp_path}/r.sqlite")
    for i in range(3):
        store.add(_result(i))
    with store.engine.begin() as db:
        db.execute(sa.text("UPDATE harness_results SET body = '{not json' WHERE key = 'k001'"))
        db.execute(sa.text("UPDATE harness_results SET value = 0.125 WHERE key = 'k002'"))  # still readable
    assert store.done_keys() == {"k000", "k002"}
    assert sorted(parses) == ["k001", "k002"]
    parses.clear()
    assert store.done_keys() == {"k000", "k002"}
    assert parses == ["k001"]  # the readable changed row got its checksum again; the damaged one stays damaged


def _migrates(url: str, parses: list) -> None:
    store = Store(url)
    for i in range(4):
        store.add(_result(i))
    store.engine.dispose()
    _drop_checksums(url)
    old = Store(url, readonly=True)  # a reader adds nothing, and still reads the old table
    assert old.done_keys() == {f"k{i:03d}" for i in range(4)} and len(list(old.results())) == 4
    assert not any(c["name"] == "checksum" for c in sa.inspect(old.engine).get_columns("harness_results"))
    parses.clear()
    store = Store(url)  # opened for writing: the column is added
    assert any(c["name"] == "checksum" for c in sa.inspect(store.engine).get_columns("harness_results"))
    assert store.done_keys() == {f"k{i:03d}" for i in range(4)}
    assert sorted(parses) == [f"k{i:03d}" for i in range(4)]  # validated the old way, once
    parses.clear()
    assert Store(url).done_keys() == {f"k{i:03d}" for i in range(4)}
    assert parses == []
    store.add(_result(9))
    assert store.done_keys(["k009"]) == {"k009"} and parses == []


def test_an_older_sqlite_store_gets_the_checksum_column_on_open(tmp_path, parses):
    _migrates(f"sqlite:///{tmp_path}/r.sqlite", parses)


@pytest.mark.slow
def test_an_older_postgresql_store_gets_the_checksum_column_on_open(postgres, parses):  # noqa: F811
    _migrates(postgres.new_database(), parses)


# ------------------------------------------------------------------ predict without a stored model
import json  # noqa: E402
import sqlite3  # noqa: E402

from test_predict import TOY, _assert_reproduces, _predicted, _stored  # noqa: E402

from harness.cli import main  # noqa: E402


def _toy_without_models(tmp_path):
    cfg = tmp_path / "toy.toml"
    cfg.write_text(
        TOY.format(results=tmp_path / "out")
        .replace("workers = 1", 'workers = 1\nstore_models = "none"')
        .replace("seeds = [0, 1]", "seeds = [0]")
    )
    assert main(["run", str(cfg)]) == 0
    db = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    assert db.execute("SELECT COUNT(*) FROM harness_models").fetchone() == (0,)
    return cfg


def test_predict_refits_a_study_stored_without_its_model(tmp_path, capsys):
    cfg = _toy_without_models(tmp_path)
    base = ["--plugin", "toy_plugin", "predict", str(tmp_path / "out"), "--dataset", "toy", "--format", "json"]
    capsys.readouterr()
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "no stored model" in err and "--config CONFIG" in err
    stored = _stored(tmp_path / "out")
    predicted = _predicted(capsys, [*base, "--config", str(cfg)])
    _assert_reproduces(stored, predicted)  # the refitted models give the stored test predictions, bit for bit


def test_a_refit_that_does_not_reproduce_the_stored_predictions_is_refused(tmp_path, capsys):
    cfg = _toy_without_models(tmp_path)
    db = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    key, body = db.execute("SELECT key, body FROM harness_results WHERE unit LIKE '%corners%'").fetchone()
    body = json.loads(body)
    body["predictions"]["proba"][0][0] += 1e-12  # what a model that is not bit-deterministic would give
    db.execute("UPDATE harness_results SET body = ? WHERE key = ?", (json.dumps(body), key))
    db.commit()
    capsys.readouterr()
    assert (
        main(
            [
                "--plugin",
                "toy_plugin",
                "predict",
                str(tmp_path / "out"),
                "--dataset",
                "toy",
                "--only",
                "*/corners/*",
                "--config",
                str(cfg),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "does not reproduce the stored test predictions" in err and "largest difference 1e-12" in err


# ------------------------------------------------------------------ the leaderboard figure, cached by content
def test_an_unchanged_leaderboard_figure_is_copied_from_the_cache(tmp_path, monkeypatch):
    from harness.report import figures

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    drawn = []
    real = figures.leaderboard_figure
    monkeypatch.setattr(figures, "leaderboard_figure", lambda rows: drawn.append(1) or real(rows))
    row = {
        "dataset": "d",
        "task": "t",
        "metric": "roc_auc",
        "representation": "r",
        "perturbation": "p",
        "model": "m",
        "mean": 0.8,
        "ci_low": 0.7,
        "ci_high": 0.9,
        "vs_best": "best",
        "fit_seconds": 1.0,
    }
    figures.leaderboard_png([row], tmp_path / "a.png")
    figures.leaderboard_png([{**row, "fit_seconds": 2.0}], tmp_path / "b.png")  # what the figure does not show
    assert len(drawn) == 1 and (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    figures.leaderboard_png([{**row, "mean": 0.81}], tmp_path / "c.png")
    assert len(drawn) == 2 and (tmp_path / "c.png").read_bytes() != (tmp_path / "a.png").read_bytes()


# ------------------------------------------------------------------ scattering tables without pymatgen's xrd module
def test_scattering_tables_are_pymatgens_and_load_without_scipy_stats_or_matplotlib():
    code = textwrap.dedent("""
        import sys
        from harness_plugins.representations import scattering
        scattering.xray_table(), scattering.neutron_table()
        print("HEAVY:", sorted(m for m in ("scipy.stats", "matplotlib", "pymatgen.analysis.diffraction.xrd") if m in sys.modules))
    """)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert "HEAVY: []" in done.stdout, done.stdout + done.stderr[-2000:]
    from pymatgen.analysis.diffraction.neutron import ATOMIC_SCATTERING_LEN
    from pymatgen.analysis.diffraction.xrd import ATOMIC_SCATTERING_PARAMS

    from harness_plugins.representations import scattering

    xray = scattering.xray_table()
    assert xray.keys() == ATOMIC_SCATTERING_PARAMS.keys()
    assert all(np.array_equal(xray[k], np.asarray(v, dtype=float)) for k, v in ATOMIC_SCATTERING_PARAMS.items())
    assert scattering.neutron_table() == {k: float(v) for k, v in ATOMIC_SCATTERING_LEN.items()}


def test_store_models_best_keeps_only_the_best_rows_models(tmp_path, capsys):
    cfg = tmp_path / "toy.toml"
    cfg.write_text(TOY.format(results=tmp_path / "out").replace("workers = 1", 'workers = 1\nstore_models = "best"'))
    assert main(["run", str(cfg)]) == 0
    db = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    kept = db.execute(
        "SELECT r.representation, r.seed FROM harness_models m JOIN harness_results r USING (key)"
    ).fetchall()
    board = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    rows = board["rows"] if isinstance(board, dict) else board
    best = [r["representation"] for r in rows if r["vs_best"] == "best"]
    assert len(best) == 1 and sorted(kept) == [(best[0], 0), (best[0], 1)]  # both seeds of the best row, nothing else
    assert db.execute("SELECT COUNT(*) FROM harness_results").fetchone() == (4,)  # every result stays


# ------------------------------------------------------------------ a study's worker opens Optuna's tables without alembic
OPEN_PREPARED = textwrap.dedent("""
    import sys
    import optuna
    from harness.services.store import Store
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = Store(sys.argv[1]).optuna_storage(prepared=True)
    study = optuna.create_study(study_name="s", storage=storage, load_if_exists=True)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    print("ALEMBIC:", sorted(m for m in ("alembic", "mako", "pygments") if m in sys.modules))
""")


def test_a_worker_opens_the_runs_optuna_tables_without_importing_alembic(tmp_path):
    import optuna

    from harness.services.store import Store

    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    Store(url).optuna_storage()  # what the run does once, in the main process
    for _ in range(2):  # a new study, then the same one resumed
        done = subprocess.run([sys.executable, "-c", OPEN_PREPARED, url], capture_output=True, text=True, timeout=300)
        assert "ALEMBIC: []" in done.stdout, done.stdout + done.stderr[-2000:]
    study = optuna.load_study(study_name="s", storage=Store(url).optuna_storage())
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 4


CREATE_FRESH = textwrap.dedent("""
    import sys
    from harness.services.store import Store
    Store(sys.argv[1]).optuna_storage()
    print("ALEMBIC:", sorted(m for m in ("alembic", "mako", "pygments") if m in sys.modules))
""")


def test_a_new_stores_optuna_tables_are_made_without_alembic_and_optuna_accepts_them(tmp_path):
    import optuna

    from harness.services.store import Store

    url = f"sqlite:///{tmp_path / 'results.sqlite'}"
    done = subprocess.run([sys.executable, "-c", CREATE_FRESH, url], capture_output=True, text=True, timeout=300)
    assert "ALEMBIC: []" in done.stdout, done.stdout + done.stderr[-2000:]
    full = Store(url).optuna_storage()  # tables exist now: Optuna's own open, with its checks
    assert isinstance(full, optuna.storages.RDBStorage) and type(full) is optuna.storages.RDBStorage
    assert full.get_current_version() == full.get_head_version()  # stamped as Optuna stamps a new store
    optuna.create_study(study_name="s", storage=full).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    assert len(optuna.load_study(study_name="s", storage=optuna.storages.RDBStorage(url)).trials) == 1
