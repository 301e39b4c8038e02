"""The configs that reproduce the paper on the shared files are valid and ask for what the
paper did (checked without loading any data)."""

from pathlib import Path

import pytest

from harness.services import config, registry
from harness.plan.plan import grids

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
CONFIGS = sorted(BENCHMARKS.glob("*.toml"))


@pytest.fixture(scope="module")
def reg():
    return registry.load()


def _ids(path, reg):
    return {f"{part.label}:{c.id}": c for part, grid in grids(config.load(str(path)), reg) for c in grid.combinations}


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_shipped_config_validates_and_expands(path, reg):
    assert _ids(path, reg)


@pytest.mark.parametrize("name", ["paper-symmetry.toml", "paper-symmetry-cpu.toml"])
def test_symmetry_configs_follow_the_papers_settings(name, reg):
    combos = _ids(BENCHMARKS / name, reg)
    systems = [c for c in combos.values() if c.task.name == "crystal_system"]
    assert systems and all(c.representation.n == 3 and c.representation.cell == "conventional" for c in systems)
    assert all({t.name for t in c.transforms} == {"mask_intensity", "rotate"} for c in systems)
    trig_hex = [c for c in combos.values() if c.task.name == "trigonal_vs_hexagonal"]
    views = {(c.representation.n, "mask_intensity" in {t.name for t in c.transforms}) for c in trig_hex}
    assert {(3, True), (3, False), (27, False)} <= views
    # a mask the model's kind cannot take would silently be no mask: none is asked for
    assert all(c.representation.kind == "cloud" for c in trig_hex if c.task.mask_intensity)


def test_property_configs_sweep_n_and_the_four_perturbations(reg):
    for name in ("paper-properties.toml", "paper-cpu.toml"):
        combos = _ids(BENCHMARKS / name, reg).values()
        assert {c.task.name for c in combos} == {"metallicity", "bulk_modulus", "shear_modulus", "stability"}
        assert {c.representation.n for c in combos} == {3, 4, 27, 125, 343}
        assert {c.perturbation.name for c in combos} == {"none", "random_scale", "systematic_absence"}
        neutron = [
            c
            for c in combos
            if getattr(c.representation, "radiation", "xray") == "neutron" or c.representation.name == "nd_cloud"
        ]
        assert neutron and all(c.perturbation.name == "none" for c in neutron)  # phi4
