"""The run engine's promises: one result per study identity, never stale, always finishing,
resumed tuning equal to uncut tuning, damage repaired or named, no code from data."""

import json
import pickle
import sqlite3
from pathlib import Path

import pytest

from harness.cli import main

CONFIG = """
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["ratios"]
perturbations = [{{name = "noise", sigma = 0.3}}]
models = ["random_forest"]
[dataset]
name = "toy"
size = {size}
[run]
trials = {trials}
workers = 1
seeds = [0]
results = "{results}"
"""


def _config(folder: Path, trials: int = 6, results: str = "out", size: int = 120) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "bench.toml"
    path.write_text(CONFIG.format(trials=trials, results=results, size=size))
    return path


def _db(folder: Path) -> sqlite3.Connection:
    return sqlite3.connect(folder / "out" / "results.sqlite")


def _results(folder: Path, superseded: bool = False) -> list[tuple]:
    rows = (
        _db(folder)
        .execute("SELECT unit, key, value, body FROM harness_results WHERE superseded = ? ORDER BY unit", (superseded,))
        .fetchall()
    )
    return [(u, k, v, json.loads(b)["params"]) for u, k, v, b in rows]


def _trial_params(folder: Path) -> list[dict]:
    """Parameters of the finished trials, in order."""
    db = _db(folder)
    rows = db.execute(
        "SELECT t.trial_id, t.number, p.param_name, p.param_value FROM trials t "
        "JOIN trial_params p ON p.trial_id = t.trial_id WHERE t.state IN ('COMPLETE', 'PRUNED') ORDER BY t.trial_id"
    ).fetchall()
    out: dict[int, dict] = {}
    for trial_id, _, name, value in rows:
        out.setdefault(trial_id, {})[name] = value
    return list(out.values())


def test_a_study_whose_trials_all_finished_but_whose_result_was_lost_still_finishes(tmp_path):
    """Defect 1: with every trial in the store and no model in memory, the rerun refits the
    best trial instead of failing with KeyError('model')."""
    cfg = _config(tmp_path)
    assert main(["run", str(cfg)]) == 0
    before = _results(tmp_path)
    db = _db(tmp_path)
    db.execute("DELETE FROM harness_results")
    db.commit()
    assert main(["run", str(cfg)]) == 0
    assert _results(tmp_path) == before
    assert len(_trial_params(tmp_path)) == 6  # nothing tuned twice


def test_an_interrupted_study_tunes_exactly_as_an_uncut_one(tmp_path, monkeypatch):
    """Defect 3: the sampler's draws depend on the finished trials, not on the process."""
    from harness_plugins.models.trees import RandomForest

    uncut = tmp_path / "uncut"
    assert main(["run", str(_config(uncut))]) == 0

    cut = tmp_path / "cut"
    fits, real_fit = {"n": 0}, RandomForest.fit

    def interrupted(self, *args, **kwargs):
        fits["n"] += 1
        if fits["n"] == 4:
            raise KeyboardInterrupt
        return real_fit(self, *args, **kwargs)

    monkeypatch.setattr(RandomForest, "fit", interrupted)
    assert main(["run", str(_config(cut))]) == 130
    assert len(_trial_params(cut)) == 3
    monkeypatch.setattr(RandomForest, "fit", real_fit)
    assert main(["run", str(_config(cut))]) == 0
    assert _trial_params(cut) == _trial_params(uncut)
    assert [r[1:] for r in _results(cut)] == [r[1:] for r in _results(uncut)]


def test_a_new_representation_version_supersedes_old_results(tmp_path, monkeypatch, capsys):
    """Defect 2: a bumped version is a new identity; old numbers are kept, marked, never shown."""
    import toy_plugin

    cfg = _config(tmp_path, trials=1)
    assert main(["run", str(cfg)]) == 0
    old = _results(tmp_path)
    monkeypatch.setattr(toy_plugin.Ratios, "version", "2")
    capsys.readouterr()
    assert main(["run", str(cfg)]) == 0
    assert "0 already done, 1 to run" in capsys.readouterr().out
    assert _results(tmp_path, superseded=True) == old
    assert _results(tmp_path)[0][1] != old[0][1]
    rows = json.loads((tmp_path / "out" / "leaderboard.json").read_text())
    assert len(rows) == 1 and rows[0]["n_seeds"] == 1


def test_edited_dataset_content_reruns_its_studies(tmp_path, monkeypatch, capsys):
    """Defect 2: the key covers the materials and their properties, not only the dataset's name."""
    import toy_plugin

    cfg = _config(tmp_path, trials=1)
    assert main(["run", str(cfg)]) == 0
    real_load = toy_plugin.ToyDataset.load

    def edited(self, ctx):
        materials = real_load(self, ctx)
        first = materials[0]
        materials[0] = type(first)(first.id, first.structure, {**first.props, "note": "edited"})
        return materials

    monkeypatch.setattr(toy_plugin.ToyDataset, "load", edited)
    capsys.readouterr()
    assert main(["run", str(cfg)]) == 0
    assert "0 already done, 1 to run" in capsys.readouterr().out


def test_every_result_records_its_identity_and_versions(tmp_path):
    cfg = _config(tmp_path, trials=1)
    assert main(["run", str(cfg)]) == 0
    body = json.loads(_db(tmp_path).execute("SELECT body FROM harness_results").fetchone()[0])
    ident, versions = body["identity"], body["versions"]
    assert ident["representation"]["version"] == "1" and ident["dataset"]["content"]
    assert {"task", "model", "perturbation", "split", "seed", "trials", "harness"} <= set(ident)
    assert {
        "harness",
        "numpy",
        "sklearn",
        "xgboost",
        "torch",
        "pymatgen",
        "spglib",
        "optuna",
        "device",
        "commit",
    } <= set(versions)
    preds = body["predictions"]
    assert len(preds["ids"]) == len(preds["y"]) == len(preds["proba"]) and len(preds["proba"][0]) == 2


def test_claims_refuse_a_live_owner_take_over_a_dead_one_and_never_a_finished_study(tmp_path):
    """Defect 5 (the store's part; two real drivers are in test_engine_faults.py)."""
    import time

    from harness.services.store import Store, UnitResult, new_owner

    store = Store(f"sqlite:///{tmp_path}/results.sqlite")
    a, b = new_owner(), new_owner()
    assert store.claim("k", a)
    assert not store.claim("k", b)  # a is alive
    assert store.claim("k", a)  # a's own claim
    time.sleep(0.05)
    assert store.claim("k", b, ttl=0.01)  # a stopped beating: taken over
    assert store.claims()["k"][0] == b
    result = UnitResult("u", "k", "d", "t", "r", "p", "m", 0, "roc_auc", 0.5)
    assert store.add(result) and not store.add(result)  # written once; the first stays
    assert store.claims() == {} and not store.claim("k", a)


def test_a_damaged_feature_chunk_is_recomputed_with_a_warning(tmp_path, caplog):
    """Defect 6: truncated or bit-flipped cache files are detected by checksum."""
    import os

    cfg = _config(tmp_path, trials=1)
    assert main(["run", str(cfg)]) == 0
    cache = Path(os.environ["HARNESS_CACHE_DIR"])
    chunks = sorted((cache / "features" / "ratios").glob("*.npz"))
    assert chunks
    data = bytearray(chunks[0].read_bytes())
    data[len(data) // 2] ^= 0x01  # one flipped bit
    chunks[0].write_bytes(bytes(data))
    for f in (cache / "inputs").glob("*.npz"):
        f.write_bytes(f.read_bytes()[:100])  # truncated
    (tmp_path / "out" / "results.sqlite").unlink()
    for extra in (tmp_path / "out").glob("results.sqlite-*"):
        extra.unlink()
    assert main(["run", str(cfg)]) == 0
    assert "damaged cache file" in caplog.text


def test_a_damaged_results_store_is_named_in_one_line(tmp_path, capsys):
    cfg = _config(tmp_path, trials=1)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "results.sqlite").write_bytes(b"this is not a database" * 100)
    assert main(["run", str(cfg)]) == 2
    err = capsys.readouterr().err.strip()
    assert "results.sqlite is damaged" in err and "move it aside" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "results, message",
    [
        ("{tmp}/a-file", "is a file, not a folder"),
        ("/sys/harness-results", "cannot write results folder"),
    ],
)
def test_unusable_results_folders_are_one_line(tmp_path, capsys, results, message):
    """Defect 7."""
    (tmp_path / "a-file").write_text("x")
    cfg = _config(tmp_path, trials=1)
    assert main(["run", str(cfg), "--results", results.format(tmp=tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_an_unusable_cache_folder_is_one_line_before_any_work(tmp_path, capsys, monkeypatch):
    (tmp_path / "a-file").write_text("x")
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "a-file"))
    assert main(["run", str(_config(tmp_path, trials=1))]) == 2
    err = capsys.readouterr().err.strip()
    assert "HARNESS_CACHE_DIR" in err and len(err.splitlines()) == 1


def test_stored_models_are_not_pickles_and_old_pickles_are_never_loaded(tmp_path):
    """Defect 8: nothing in a results folder is unpickled."""
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (Path.write_text, (marker, "ran"))

    cfg = _config(tmp_path, trials=1)
    (tmp_path / "out" / "models").mkdir(parents=True)
    for name in ("0000.pkl", "model.pkl"):
        (tmp_path / "out" / "models" / name).write_bytes(pickle.dumps({"model": Evil()}))
    assert main(["run", str(cfg)]) == 0
    main(["explain", str(cfg), "toy_system/*"])
    assert not marker.exists()
    blob = _db(tmp_path).execute("SELECT format, blob FROM harness_models").fetchall()
    for fmt, data in blob:
        assert not data.startswith(b"\x80"), "a pickle was stored"


def test_a_module_beside_the_config_cannot_shadow_an_installed_package(tmp_path):
    """Defect 8: the config's folder joins sys.path only for its plugins, and after packages."""
    marker = tmp_path / "shadowed"
    (tmp_path / "optuna.py").write_text(f"open({str(marker)!r}, 'w').write('x')\n")
    cfg = _config(tmp_path, trials=1)
    assert main(["run", str(cfg)]) == 0
    assert not marker.exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--trials", "0"], "--trials 0"),
        (["--trials", "-3"], "--trials -3"),
        (["--workers", "0"], "--workers 0"),
    ],
)
def test_command_line_overrides_are_validated_like_the_toml(tmp_path, capsys, args, message):
    """Defect 9."""
    assert main(["run", str(_config(tmp_path, trials=1)), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_messages_print_literally(tmp_path, capsys):
    """Defect 9: brackets in a message are text, not Rich markup."""
    folder = tmp_path / "[/x]" / "[dataset]"
    assert main(["run", str(folder / "missing.toml")]) == 2
    err = capsys.readouterr().err.strip()
    assert "[/x]/[dataset]/missing.toml" in err


def test_a_task_without_labels_fails_before_featurisation(tmp_path, capsys, monkeypatch):
    import toy_plugin

    monkeypatch.setattr(toy_plugin.ToySystem, "label", lambda self, m: None)
    monkeypatch.setattr(toy_plugin.ToySystem, "reads", ("system",), raising=False)
    called = {"n": 0}
    real = toy_plugin.Ratios.featurize

    def counting(self, s):
        called["n"] += 1
        return real(self, s)

    monkeypatch.setattr(toy_plugin.Ratios, "featurize", counting)
    assert main(["run", str(_config(tmp_path, trials=1, size=78))]) == 2
    err = capsys.readouterr().err.strip()
    assert "no labelled material" in err and "columns = { system" in err
    assert called["n"] == 0


def test_a_rerun_with_everything_done_loads_nothing(tmp_path, monkeypatch, capsys):
    import toy_plugin

    cfg = _config(tmp_path, trials=1)
    assert main(["run", str(cfg)]) == 0
    monkeypatch.setattr(toy_plugin.ToyDataset, "content_id", lambda self: "fixed", raising=False)
    assert main(["run", str(cfg)]) == 0  # a new content id: one more study
    monkeypatch.setattr(toy_plugin.ToyDataset, "load", lambda self, ctx: pytest.fail("loaded"))
    capsys.readouterr()
    assert main(["run", str(cfg)]) == 0
    assert "1 already done, 0 to run" in capsys.readouterr().out


def test_editing_a_row_of_a_file_dataset_is_a_new_identity(tmp_path):
    """Defect 2 for the `file` dataset: its content id hashes the file's bytes."""
    from harness_plugins.datasets.files import FileDataset

    table = tmp_path / "data.csv"
    table.write_text("material_id,band_gap,cif\nmp-1,0.0,x\n")
    before = FileDataset(path=str(table)).content_id()
    assert FileDataset(path=str(table)).content_id() == before  # stable
    table.write_text("material_id,band_gap,cif\nmp-1,0.5,x\n")
    assert FileDataset(path=str(table)).content_id() != before
    assert (
        FileDataset(path=str(table), columns={"band_gap": "gap"}).content_id()
        != FileDataset(path=str(table)).content_id()
    )


def test_spawned_workers_give_the_numbers_of_forked_ones(tmp_path):
    """On a GPU several studies share the device from spawned workers (a forked child
    cannot use its parent's CUDA state); the numbers must not depend on how workers start."""
    from rich.console import Console

    from harness.services import config as cfgmod
    from harness.services import registry
    from harness.execute.executors.local import LocalExecutor
    from harness.plan.plan import make_plan
    from harness.prepare.prepare import prepare
    from harness.runner import execute
    from harness.services.store import Store
    from harness.execute.study import Environment

    console = Console(quiet=True)
    outcomes = {}
    for start in ("fork", "spawn"):
        conf = cfgmod.load(_config(tmp_path / start, trials=2))
        store = Store(f"sqlite:///{tmp_path / start}/results.sqlite")
        plan = make_plan(conf, registry.load(conf.plugins), store, console)
        ready = [s for part in plan.parts for s in prepare(conf, part, part.studies, console).studies]
        store.optuna_storage()
        env = Environment(store.url, "cpu", 1, {})
        assert execute(ready, store, LocalExecutor(2, start), env, console) == 0
        outcomes[start] = [(r.unit, r.value, r.params) for r in store.results()]
    assert len(outcomes["fork"]) == 1 and outcomes["spawn"] == outcomes["fork"]
