"""Issue 22 item 1 and issue 20 item 1: one symmetry analysis per crystal, shared by split
grouping, symmetry labels and standard cells; structures spglib cannot take (NaN, singular
cells) are skipped and counted, never handed to C code.

Runs happen in subprocesses: a segmentation fault in spglib fails the test instead of
killing pytest, and a spy on spglib counts the searches of every process of the run
(forked workers included) in one file.
"""

from __future__ import annotations

import collections
import csv
import gzip
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import SHARED_DATA

# The shared data folder sits beside the checkout (or beside the folder of worktrees).
_FOLDERS = [SHARED_DATA, *(p / "shared" / "data" for p in Path(__file__).resolve().parents)]
METALLICITY = next(
    (f / "mp_metallicity_36k.csv.gz" for f in _FOLDERS if (f / "mp_metallicity_36k.csv.gz").exists()),
    SHARED_DATA / "mp_metallicity_36k.csv.gz",
)
pytestmark = pytest.mark.skipif(not METALLICITY.exists(), reason="shared data folder absent")

# Replaces spglib's search by one that records each call's (lattice, positions) content
# and symprec, then runs the harness command line.
DRIVER = textwrap.dedent("""
    import hashlib, json, os, sys
    import numpy as np
    import spglib
    log = os.environ["SPY_LOG"]
    real = spglib.get_symmetry_dataset
    def spy(cell, symprec=1e-5, *args, **kwargs):
        h = hashlib.blake2b(np.ascontiguousarray(cell[0], dtype=float).tobytes()
                            + np.ascontiguousarray(cell[1], dtype=float).tobytes(), digest_size=8).hexdigest()
        with open(log, "a") as f:
            f.write(json.dumps([h, symprec]) + "\\n")
        return real(cell, symprec, *args, **kwargs)
    spglib.get_symmetry_dataset = spy
    from harness.cli import main
    sys.exit(main(sys.argv[1:]))
""")


def cif_folder(folder: Path, n: int, nan: bool = True) -> list[str]:
    """`n` crystals of the shared metallicity file as CIFs + id_prop.csv; with `nan`, one
    more whose lattice length a is NaN. Returns the ids."""
    folder.mkdir(parents=True)
    csv.field_size_limit(10**8)
    rows = []
    with gzip.open(METALLICITY, "rt") as f:
        for i, r in enumerate(csv.DictReader(f)):
            if i >= n:
                break
            rows.append(r)
    lines = []
    for r in rows:
        (folder / f"{r['material_id']}.cif").write_text(r["cif"])
        lines.append(f"{r['material_id']},{r['band_gap']}\n")
    if nan:
        text = rows[0]["cif"]
        line = next(x for x in text.splitlines() if x.startswith("_cell_length_a"))
        (folder / "mp-nan.cif").write_text(text.replace(line, "_cell_length_a   nan"))
        lines.append("mp-nan,0.0\n")
    (folder / "id_prop.csv").write_text("material_id,band_gap\n" + "".join(lines))
    return [r["material_id"] for r in rows]


def write_config(tmp_path: Path, folder: Path, tasks: str, reps: str, group_by: str, workers: int) -> Path:
    path = tmp_path / "run.toml"
    path.write_text(
        textwrap.dedent(f"""
        tasks = {tasks}
        models = ["random_forest"]
        {reps}
        [run]
        seeds = [0]
        trials = 1
        workers = {workers}
        results = "{tmp_path / "results"}"
        split = {{ group_by = "{group_by}" }}
        [dataset]
        name = "file"
        path = "{folder}"
    """)
    )
    return path


def run_cli(tmp_path: Path, *argv: str, spy: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HARNESS_CACHE_DIR=str(tmp_path / "cache"), SPY_LOG=str(spy or tmp_path / "spy.log"))
    return subprocess.run(
        [sys.executable, "-c", DRIVER, *argv], check=False, env=env, capture_output=True, text=True, timeout=600
    )


def test_a_nan_lattice_is_skipped_and_counted_in_run_featurize_and_predict(tmp_path):
    folder = tmp_path / "cifs"
    ids = cif_folder(folder, 40)
    config = write_config(
        tmp_path, folder, '["metallicity"]', '[[representations]]\nname = "barcode"\nn = 3', "formula_spacegroup", 1
    )
    import shutil

    for attempt in ("first", "rerun"):
        done = run_cli(tmp_path, "run", str(config))
        assert done.returncode == 0, f"{attempt}: exit {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        assert "1 skipped: unusable structure: lattice has non-finite values" in done.stdout, done.stdout[-3000:]
        assert "40 featurised" in done.stdout
        # The rerun reads the parse cache (which keeps the structure) and computes the rest again.
        shutil.rmtree(tmp_path / "results")
        for folder_name in ("inputs", "features", "cells", "symmetry", "groups"):
            shutil.rmtree(tmp_path / "cache" / folder_name, ignore_errors=True)
    done = run_cli(tmp_path, "run", str(config))  # kept for predict below

    one = run_cli(tmp_path, "featurize", str(folder / "mp-nan.cif"), "--representation", "xrd_cloud")
    assert one.returncode == 2, one.stdout + one.stderr
    assert "non-finite" in one.stdout + one.stderr

    pred = run_cli(
        tmp_path, "predict", str(tmp_path / "results"), str(folder / "mp-nan.cif"), str(folder / f"{ids[1]}.cif")
    )
    assert pred.returncode in (0, 2), f"exit {pred.returncode}\n{pred.stdout[-2000:]}\n{pred.stderr[-2000:]}"
    assert "Traceback" not in pred.stdout + pred.stderr


@pytest.mark.parametrize("workers", [1, 2])
def test_one_spglib_search_per_crystal_and_symprec_in_a_run(tmp_path, workers):
    """Grouping by formula and space group, a crystal-system task labelled from the
    structure, and two representations on two cell choices: each crystal is searched once."""
    folder = tmp_path / "cifs"
    ids = cif_folder(folder, 40, nan=False)
    reps = textwrap.dedent("""
        [[representations]]
        name = "barcode"
        n = 3
        cell = "primitive"
        [[representations]]
        name = "barcode"
        n = 4
        cell = "conventional"
    """)
    tasks = '["metallicity", {name = "crystal_system", source = "structure"}]'
    config = write_config(tmp_path, folder, tasks, reps, "formula_spacegroup", workers)
    spy = tmp_path / "spy.log"
    done = run_cli(tmp_path, "run", str(config), spy=spy)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    calls = [tuple(json.loads(line)) for line in spy.read_text().splitlines()]
    per_crystal = collections.Counter(calls)
    assert len(per_crystal) == len(ids), (len(per_crystal), len(ids))
    assert {sp for _, sp in per_crystal} == {0.1}
    assert max(per_crystal.values()) == 1, per_crystal.most_common(3)

    # A warm rerun with everything pending again searches nothing.
    (tmp_path / "results").rename(tmp_path / "results-1")
    spy.unlink()
    done = run_cli(tmp_path, "run", str(config), spy=spy)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert not spy.exists() or not spy.read_text().strip()
