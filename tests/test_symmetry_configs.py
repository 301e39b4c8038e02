"""The symmetry and structure-vs-composition benchmark configs parse and expand into the
grids they promise (no data is loaded)."""

from __future__ import annotations

from pathlib import Path

from harness.services import config, registry

from harness.plan import grid

ROOT = Path(__file__).resolve().parents[1]


def combos(path: Path) -> dict[str, set[str]]:
    conf = config.load(path)
    reg = registry.load()
    out: dict[str, set[str]] = {}
    for part in conf.datasets:
        for c in grid.expand(conf, reg, part=part).combinations:
            out.setdefault(c.task.name, set()).add(f"{c.representation.name}/{c.model.name}")
    return out


def test_symmetry_pairs_clouds_with_pointnet_powder_with_cnn1d_and_trees_voxels_with_cnn3d():
    got = combos(ROOT / "benchmarks" / "symmetry.toml")
    expected = {
        "xrd_cloud/pointnet",
        "density_cloud/pointnet",
        "powder_pattern/cnn1d",
        "powder_pattern/random_forest",
        "powder_pattern/xgboost",
        "density_grid/cnn3d",
    }
    assert got == {task: expected for task in ("crystal_system", "extinction_group", "space_group")}


def test_structure_vs_composition_puts_composition_rows_beside_structure_rows_on_four_tasks():
    got = combos(ROOT / "benchmarks" / "structure-vs-composition.toml")
    assert set(got) == {"metallicity", "bulk_modulus", "shear_modulus", "stability"}
    for rows in got.values():
        assert {"composition/random_forest", "composition/xgboost", "barcode/xgboost", "powder_pattern/xgboost"} <= rows


def test_the_symmetry_demo_expands_on_the_demo_dataset():
    got = combos(ROOT / "benchmarks" / "demo-symmetry.toml")
    assert "density_cloud/pointnet" in got["space_group"] and "powder_pattern/cnn1d" in got["extinction_group"]
    assert "composition/cnn1d" not in got["space_group"]
