"""Issue 19, the house: a typed result record in its own module (structured entry
references, metric directions) that old stored rows still load into; a core that reads
fields and names no built-in plugin; the axes defined once; one plan -> prepare path for
`featurize --config`; a plan that never writes; stages that never import a later stage."""

from __future__ import annotations

import json
import sqlite3

import pytest

from harness.records import AXES, COMBINATION_AXES, EntryRef, UnitResult
from harness.store import RESULTS, Store


def _record(**over) -> UnitResult:
    ident = {a: {"name": f"{a}_entry", "params": {"n": 27}, "version": "3", "code": "abc"} for a in AXES}
    base = dict(unit="d:t/r/p/m#0", key="k" * 32, dataset="d", task="t", representation="r(n=27)",
                perturbation="p", model="m", seed=0, metric="miss_rate", value=0.25, identity=ident,
                directions={"miss_rate": False}, labels={"perturbation": "φ2"})
    return UnitResult(**{**base, **over})


def test_the_record_lives_in_its_own_module_and_the_store_reexports_it():
    import harness.store

    assert harness.store.UnitResult is UnitResult and UnitResult.__module__ == "harness.records"


def test_the_record_carries_entry_references_and_metric_directions(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/r.sqlite")
    store.add(_record())
    (r,) = store.results()
    assert r.entry("representation") == EntryRef("representation_entry", {"n": 27}, "3", "r(n=27)", "")
    assert r.entry("perturbation").label == "φ2" and r.entry("dataset").title == "d"
    assert r.higher_is_better() is False and r.higher_is_better("accuracy") is None
    assert r.combination_id == "t/r(n=27)/p/m" and r.row_key == ("d", "t", "r(n=27)", "p", "m")
    with pytest.raises(KeyError, match="not an axis"):
        r.entry("seed")


def test_an_old_shaped_row_without_the_new_fields_still_loads(tmp_path):
    """A row written before identities, directions and labels: its body has only the
    extra metrics and params. It loads, with empty references (titles kept)."""
    db = tmp_path / "r.sqlite"
    Store(f"sqlite:///{db}")  # creates the tables
    row = {"key": "o" * 32, "unit": "demo:t/barcode(n=27)/p/m#1", "dataset": "demo", "task": "t",
           "representation": "barcode(n=27)", "perturbation": "p", "model": "m", "seed": 1,
           "metric": "accuracy", "value": 0.5, "valid_value": 0.4, "n_train": 10, "n_valid": 2, "n_test": 3,
           "n_trials": 1, "fit_seconds": 0.1, "device": "cpu", "finished": 1.0, "superseded": 0,
           "body": json.dumps({"extra": {"roc_auc": 0.6}, "params": {"depth": 3}})}
    assert set(row) == {c.name for c in RESULTS.columns}
    with sqlite3.connect(db) as con:
        con.execute(f"INSERT INTO harness_results ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                    list(row.values()))
    (r,) = Store(f"sqlite:///{db}").results()
    assert r.labels == {} and r.directions == {} and r.identity == {} and r.extra == {"roc_auc": 0.6}
    assert r.entry("representation") == EntryRef("", {}, "", "barcode(n=27)", "")
    assert r.higher_is_better() is None


def test_the_axes_are_the_records_title_fields_in_order():
    names = [f.name for f in UnitResult.__dataclass_fields__.values()]
    assert AXES == ("dataset", *COMBINATION_AXES) and names[2:2 + len(AXES)] == list(AXES)
    assert [c.name for c in RESULTS.columns][2:2 + len(AXES)] == list(AXES)
