"""`harness predict`: a stored model applied again reproduces the stored test predictions
exactly, whether the materials come from a registered dataset or from users' files."""

import dataclasses
import csv
import gzip
import json
from typing import ClassVar

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from harness.cli import main
from harness.services.store import Store

TOY = """
plugins = ["toy_plugin"]
tasks = ["toy_system"]
representations = ["ratios", "corners"]
perturbations = [{{name = "noise", sigma = 0.3}}]
models = ["centroids"]
[dataset]
name = "toy"
[run]
trials = 3
seeds = [0, 1]
workers = 1
results = "{results}"
"""


def _stored(results) -> dict:
    return {(r.unit, r.seed): r for r in Store(f"sqlite:///{results}/results.sqlite").results()}


def _predicted(capsys, argv) -> list[dict]:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _assert_reproduces(stored, predicted):
    """Every stored test prediction is found again, bit for bit."""
    assert len(predicted) == len(stored)
    for study in predicted:
        r = stored[(study["study"], study["seed"])]
        again = {m["material"]: m for m in study["materials"]}
        ids, proba = r.predictions["ids"], r.predictions["proba"]
        assert ids and set(ids) <= set(again)
        for mid, p, y in zip(ids, proba, r.predictions["y"]):
            assert again[mid]["proba"] == p  # exact: same features, same draws, same model
            assert again[mid]["true"] == study["classes"][y]


def test_predict_reproduces_the_stored_test_predictions_of_a_perturbed_toy_run(tmp_path, capsys):
    cfg = tmp_path / "toy.toml"
    cfg.write_text(TOY.format(results=tmp_path / "out"))
    assert main(["run", str(cfg)]) == 0
    stored = _stored(tmp_path / "out")
    assert len(stored) == 4
    predicted = _predicted(
        capsys, ["--plugin", "toy_plugin", "predict", str(tmp_path / "out"), "--dataset", "toy", "--format", "json"]
    )
    _assert_reproduces(stored, predicted)
    # The noise draws are what they seem: a study's seed decides them, so seeds differ.
    one = _predicted(
        capsys,
        [
            "--plugin",
            "toy_plugin",
            "predict",
            str(tmp_path / "out"),
            "--dataset",
            "toy",
            "--format",
            "json",
            "--seed",
            "1",
            "--only",
            "*/corners/*",
        ],
    )
    assert [p["seed"] for p in one] == [1] and "corners" in one[0]["study"]
    # Crystals that cannot be featurised are counted, never dropped silently.
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
                "--set",
                "bad=3",
                "--only",
                "*/ratios*/*",
                "--seed",
                "0",
            ]
        )
        == 0
    )
    assert "3 materials not predicted (3 skipped: dummy species: 3)" in capsys.readouterr().out


def _crystals(rng, n, start):
    """Metals (bcc Fe-like, gap 0) and insulators (rock salt, gap > 0), alternating."""
    rows = []
    for i in range(start, start + n):
        if i % 2:
            s = Structure.from_spacegroup(
                "Fm-3m", Lattice.cubic(rng.uniform(5.2, 5.9)), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]
            )
            gap = rng.uniform(0.5, 5)
        else:
            s = Structure(Lattice.cubic(rng.uniform(2.7, 3.1)), ["Fe", "Fe"], [[0, 0, 0], [0.5, 0.5, 0.5]])
            gap = 0.0
        rows.append({"material_id": f"m-{i}", "band_gap": gap, "cif": s.to(fmt="cif")})
    return rows


def _write_csv(path, rows):
    with gzip.open(path, "wt", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["material_id", "band_gap", "cif"])
        w.writeheader()
        w.writerows(rows)


FILES = """
tasks = ["metallicity"]
representations = [{{name = "barcode", n = 27}}]
perturbations = ["random_scale"]
models = ["random_forest"]
[dataset]
name = "file"
path = ["{train}", "{test}"]
split_column = "source_file"
[run]
trials = 1
seeds = [0, 1]
workers = 1
results = "{results}"
"""


@pytest.mark.slow
def test_predict_on_users_files_reproduces_a_forest_trained_on_a_shipped_split(tmp_path, capsys):
    rng = np.random.default_rng(0)
    train, test = tmp_path / "train.csv.gz", tmp_path / "test.csv.gz"
    _write_csv(train, _crystals(rng, 60, 0))
    _write_csv(test, _crystals(rng, 20, 60))
    cfg = tmp_path / "files.toml"
    cfg.write_text(FILES.format(train=train, test=test, results=tmp_path / "out"))
    assert main(["run", str(cfg)]) == 0
    stored = _stored(tmp_path / "out")
    for r in stored.values():  # the shipped split is honoured: test.csv is the test split
        assert sorted(r.predictions["ids"]) == sorted(f"m-{i}" for i in range(60, 80))
    predicted = _predicted(
        capsys,
        [
            "predict",
            str(tmp_path / "out"),
            "--dataset",
            "file",
            "--set",
            f'path=["{train}", "{test}"]',
            "--format",
            "json",
        ],
    )
    _assert_reproduces(stored, predicted)

    # One new structure file: no band gap in a CIF, so no true label; a prediction all the same.
    cif = tmp_path / "NaCl.cif"
    Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
        filename=str(cif)
    )
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "out"), str(cif), "--seed", "0", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split(",")[:6] == ["study", "seed", "material", "true", "predicted", "confidence"]
    assert len(lines) == 2 and lines[1].split(",")[2:4] == [str(cif), ""]


def test_predict_names_what_is_missing(tmp_path, capsys):
    assert main(["predict", str(tmp_path)]) == 2
    assert "no results in" in capsys.readouterr().err
    cfg = tmp_path / "toy.toml"
    cfg.write_text(
        TOY.format(results=tmp_path / "out")
        .replace("seeds = [0, 1]", "seeds = [0]")
        .replace('"ratios", "corners"', '"ratios"')
    )
    assert main(["run", str(cfg)]) == 0
    capsys.readouterr()
    assert (
        main(["--plugin", "toy_plugin", "predict", str(tmp_path / "out"), "--only", "nothing/*", "--dataset", "toy"])
        == 2
    )
    assert "no stored study matches --only nothing/*" in capsys.readouterr().err
    assert main(["--plugin", "toy_plugin", "predict", str(tmp_path / "out"), str(tmp_path / "absent.cif")]) == 2
    assert "cannot read structure" in capsys.readouterr().err


def test_predict_hands_a_table_or_folder_to_the_dataset_that_declares_its_suffix(tmp_path):
    from harness import Dataset
    from harness.services import registry
    from harness.report.predict import _dataset_for

    reg = registry.load()
    (tmp_path / "folder").mkdir()
    assert _dataset_for(str(tmp_path / "t.csv.gz"), reg) == "file"
    assert _dataset_for(str(tmp_path / "folder"), reg) == "file"
    assert _dataset_for(str(tmp_path / "one.cif"), reg) is None  # a structure, read by pymatgen

    @dataclasses.dataclass
    class Tables(Dataset):
        name: ClassVar[str] = "a_tables"  # sorts before "file": declared claims are read in name order
        reads_paths: ClassVar[tuple[str, ...]] = (".weird",)

    reg.add("dataset", Tables, "probe")
    assert _dataset_for(str(tmp_path / "x.weird"), reg) == "a_tables"
