"""`harness featurize`: what a model sees for one structure, and cache filling for a config."""

import json

from pymatgen.core import Lattice, Structure

from harness.cli import main


def _nacl(tmp_path):
    path = tmp_path / "NaCl.cif"
    Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]).to(
        filename=str(path)
    )
    return path


def test_json_output_has_columns_hkl_and_features(tmp_path, capsys):
    path = _nacl(tmp_path)
    assert (
        main(
            [
                "featurize",
                str(path),
                "--representation",
                "xrd_cloud",
                "--set",
                "n=27",
                "--set",
                "cell=conventional",
                "--format",
                "json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["columns"] == ["x", "y", "z", "intensity"]
    assert len(out["hkl"]) == 27 and len(out["features"]) == 27
    by_hkl = {tuple(h): f for h, f in zip(out["hkl"], out["features"])}
    assert by_hkl[(1, 0, 0)][3] < 1e-6  # fcc: mixed parity is absent
    assert by_hkl[(1, 1, 1)][3] > 0.1 and by_hkl[(0, 0, 0)][3] > by_hkl[(1, 1, 1)][3]


def test_barcode_is_a_vector_labelled_by_hkl(tmp_path, capsys):
    path = _nacl(tmp_path)
    assert main(["featurize", str(path), "-r", "barcode", "--set", "n=3", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["kind"] == "vector" and len(out["features"]) == 3 and len(out["hkl"]) == 3


def test_table_output_and_bad_parameter(tmp_path, capsys):
    path = _nacl(tmp_path)
    assert main(["featurize", str(path), "-r", "nd_cloud", "--set", "n=4"]) == 0
    assert "(0 0 0)" in capsys.readouterr().out
    assert main(["featurize", str(path), "-r", "xrd_cloud", "--set", "n=5"]) == 2
    assert "n" in capsys.readouterr().err


def test_featurize_config_fills_the_cache_and_reports_speed(tmp_path, capsys):
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'tasks = ["crystal_system"]\nrepresentations = [{name = "xrd_cloud", n = 27}]\n'
        'models = ["pointnet"]\n[dataset]\nname = "demo"\nsize = 200\n[run]\nworkers = 1\n'
    )
    assert main(["featurize", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "200 featurised" in out and "crystals/s" in out
    assert main(["cache", "info"]) == 0
    info = capsys.readouterr().out
    assert "features: " in info and "cells: " in info and "demo: " in info
    assert main(["cache", "clear"]) == 0  # every cache the harness writes
    capsys.readouterr()
    assert main(["cache", "info"]) == 0
    assert "features" not in capsys.readouterr().out.split("cache folder")[0]
