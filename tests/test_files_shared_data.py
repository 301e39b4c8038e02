"""The `file` dataset reads the three shared real-data files unchanged, with the README's counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.api import LoadContext
from harness_plugins.datasets.files import FileDataset

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

pytestmark = [
    pytest.mark.shared_data,
    pytest.mark.skipif(not DATA.is_dir(), reason=f"shared data not found at {DATA}"),
]


def load(tmp_path, name: str, **params):
    ctx = LoadContext(tmp_path / "cache")
    return FileDataset(path=str(DATA / name), **params).load(ctx), ctx


def test_binary_elasticity_json(tmp_path):
    columns = {"k_vrh": "bulk_modulus_vrh", "g_vrh": "shear_modulus_vrh"}
    materials, ctx = load(tmp_path, "mp_binary_elasticity_3953.json.gz", columns=columns)
    assert len(materials) == 3953 and not ctx.skipped
    assert all(m.id.startswith("mp-") for m in materials)
    assert all(isinstance(m.props["k_vrh"], float) for m in materials)
    assert all(len(m.structure.composition.elements) == 2 for m in materials)  # binaries only


def test_mp20_ehull_csv(tmp_path):
    materials, ctx = load(tmp_path, "mp20_subset_ehull_2485.csv.gz", columns={"e_above_hull": "e_above_hull"})
    assert len(materials) == 2485 and not ctx.skipped
    assert all(0.0 <= m.props["e_above_hull"] <= 0.08 + 1e-9 for m in materials)
    assert all(len(m.structure) <= 20 for m in materials)  # the mp_20 cut


@pytest.mark.slow
def test_metallicity_36k_csv_and_its_cache(tmp_path):
    materials, ctx = load(tmp_path, "mp_metallicity_36k.csv.gz")
    assert len(materials) == 36738 and not ctx.skipped
    metals = sum(m.props["band_gap"] == 0.0 for m in materials)
    assert 0.40 < metals / len(materials) < 0.45  # README: 42.5 % are metals
    again, _ = load(tmp_path, "mp_metallicity_36k.csv.gz")
    assert [m.id for m in again] == [m.id for m in materials]
    assert again[-1].structure == materials[-1].structure
