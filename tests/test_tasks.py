"""Tasks: which class each material gets, what is unlabelled, what is skipped."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
from pymatgen.core import Lattice, Structure

from harness import Material, Skip

from harness.services import registry
from harness_plugins.tasks import (
    BulkModulusTask,
    CrystalSystemTask,
    MetallicityTask,
    ShearModulusTask,
    StabilityTask,
    TrigonalVsHexagonalTask,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"

SALT = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


def mat(structure: Structure = SALT, **props) -> Material:
    return Material("m", structure, props)


# ------------------------------------------------------------------ registration


def test_all_six_tasks_are_registered_with_readable_classes():
    reg = registry.load()
    names = {"metallicity", "bulk_modulus", "shear_modulus", "stability", "crystal_system", "trigonal_vs_hexagonal"}
    assert names <= set(reg.names("task"))
    for name in names:
        task = reg.create("task", name, {})
        assert task.description and "\n" not in task.description
        assert task.metric in ("roc_auc", "accuracy", "macro_f1")
        assert len(set(task.classes)) == len(task.classes) >= 2
        assert all(isinstance(c, str) and c for c in task.classes)


def test_thresholds_are_parameters_with_the_papers_defaults():
    assert MetallicityTask().threshold == 0.0
    assert BulkModulusTask().threshold == 85.0
    assert ShearModulusTask().threshold == 34.0
    assert StabilityTask().threshold == pytest.approx(0.020)


# ------------------------------------------------------------------ property tasks


@pytest.mark.parametrize(
    "task, key, value, expected",
    [
        (MetallicityTask(), "band_gap", 0.0, 0),
        (MetallicityTask(), "band_gap", 1e-3, 1),
        (MetallicityTask(), "band_gap", "2.5", 1),  # CSV text is read as a number
        (BulkModulusTask(), "k_vrh", 85.0, 0),
        (BulkModulusTask(), "k_vrh", 85.5, 1),
        (BulkModulusTask(), "bulk_modulus_vrh", 200, 1),
        (ShearModulusTask(), "g_vrh", 34.0, 0),
        (ShearModulusTask(), "shear_modulus_vrh", 34.1, 1),
        (StabilityTask(), "e_above_hull", 0.0, 1),
        (StabilityTask(), "e_above_hull", 0.0199, 1),
        (StabilityTask(), "e_above_hull", 0.020, 0),
        (StabilityTask(), "e_above_hull", 0.5, 0),
    ],
)
def test_property_labels(task, key, value, expected):
    assert task.label(mat(**{key: value})) == expected


@pytest.mark.parametrize("task", [MetallicityTask(), BulkModulusTask(), ShearModulusTask(), StabilityTask()])
@pytest.mark.parametrize(
    "props", [{}, {"other": 1.0}, {"band_gap": None, "k_vrh": None, "g_vrh": None, "e_above_hull": ""}]
)
def test_missing_property_is_unlabelled(task, props):
    assert task.label(mat(**props)) is None


@pytest.mark.parametrize(
    "task, key, value, reason",
    [
        (BulkModulusTask(), "k_vrh", -3.0, "negative K_VRH"),
        (ShearModulusTask(), "g_vrh", -0.1, "negative G_VRH"),
        (StabilityTask(), "e_above_hull", -0.001, "negative E_hull"),
        (MetallicityTask(), "band_gap", -0.2, "negative band gap"),
        (BulkModulusTask(), "k_vrh", math.nan, "NaN K_VRH"),
        (StabilityTask(), "e_above_hull", "nan", "NaN E_hull"),
        (ShearModulusTask(), "g_vrh", math.inf, "infinite G_VRH"),
        (MetallicityTask(), "band_gap", "n/a", "non-numeric band gap"),
    ],
)
def test_unphysical_values_are_skipped_with_a_reason(task, key, value, reason):
    with pytest.raises(Skip) as err:
        task.label(mat(**{key: value}))
    assert str(err.value) == reason


@pytest.mark.parametrize("flag, expected", [(True, 0), (False, 1), ("True", 0), ("false", 1), (1, 0), (0, 1)])
def test_metallicity_reads_is_metal_when_there_is_no_gap(flag, expected):
    assert MetallicityTask().label(mat(is_metal=flag)) == expected


def test_metallicity_prefers_band_gap_over_is_metal():
    assert MetallicityTask().label(mat(band_gap=1.2, is_metal=True)) == 1


def test_thresholds_can_be_moved():
    assert BulkModulusTask(threshold=150).label(mat(k_vrh=100)) == 0
    assert MetallicityTask(threshold=0.5).label(mat(band_gap=0.3)) == 0
    assert StabilityTask(threshold=0.1).label(mat(e_above_hull=0.05)) == 1


def test_class_names_say_which_side_is_which():
    assert MetallicityTask().classes == ("metal", "insulator")
    assert BulkModulusTask().classes == ("K_VRH <= 85 GPa", "K_VRH > 85 GPa")
    assert "stable" in StabilityTask().classes[1] and "unstable" in StabilityTask().classes[0]


# ------------------------------------------------------------------ symmetry tasks


def hexagonal_mg() -> Structure:  # P6_3/mmc (194)
    return Structure.from_spacegroup("P6_3/mmc", Lattice.hexagonal(3.21, 5.21), ["Mg"], [[1 / 3, 2 / 3, 0.25]])


def trigonal_bi() -> Structure:  # R-3m (166), hexagonal setting
    return Structure.from_spacegroup("R-3m", Lattice.hexagonal(4.55, 11.86), ["Bi"], [[0, 0, 0.234]])


def monoclinic() -> Structure:
    return Structure.from_spacegroup(
        "P2_1/c", Lattice.monoclinic(5.1, 6.3, 7.2, 101.0), ["Zr", "O"], [[0.27, 0.04, 0.21], [0.07, 0.33, 0.35]]
    )


@pytest.mark.parametrize(
    "system, index",
    [
        ("triclinic", 0),
        ("monoclinic", 1),
        ("orthorhombic", 2),
        ("tetragonal", 3),
        ("trigonal", 4),
        ("hexagonal", 4),
        ("cubic", 5),
        ("Cubic ", 5),
    ],
)
def test_crystal_system_from_props_merges_trigonal_into_hexagonal(system, index):
    task = CrystalSystemTask()
    assert task.label(mat(crystal_system=system)) == index
    assert task.classes[index] == system.strip().lower().replace("trigonal", "hexagonal")


def test_crystal_system_from_structure_agrees_with_spglib():
    task = CrystalSystemTask()
    assert task.classes[task.label(mat(SALT))] == "cubic"
    assert task.classes[task.label(mat(hexagonal_mg()))] == "hexagonal"
    assert task.classes[task.label(mat(trigonal_bi()))] == "hexagonal"
    assert task.classes[task.label(mat(monoclinic()))] == "monoclinic"


def test_crystal_system_from_spacegroup_prop():
    assert CrystalSystemTask().label(mat(spacegroup=225)) == 5
    assert CrystalSystemTask().label(mat(spacegroup="14")) == 1


def test_unknown_crystal_system_name_is_skipped():
    with pytest.raises(Skip):
        CrystalSystemTask().label(mat(crystal_system="rhombohedral-ish"))


def test_crystal_system_defaults_follow_the_paper():
    task = CrystalSystemTask()
    assert (task.metric, task.extra_metrics) == ("accuracy", ("macro_f1",))
    assert len(task.classes) == 6
    assert task.representation_defaults() == {
        name: {"cell": "conventional", "n": 3} for name in ("xrd_cloud", "nd_cloud", "barcode")
    }
    assert task.transforms() == [("mask_intensity", {}), ("rotate", {"max_angle": math.pi / 4})]


def test_disabled_transforms_are_left_out():
    assert CrystalSystemTask(mask_intensity=False).transforms() == [("rotate", {"max_angle": math.pi / 4})]
    assert CrystalSystemTask(max_rotation=0).transforms() == [("mask_intensity", {})]
    assert CrystalSystemTask(mask_intensity=False, max_rotation=0.0).transforms() == []
    assert CrystalSystemTask(cell="primitive", n=27).representation_defaults()["xrd_cloud"] == {
        "cell": "primitive",
        "n": 27,
    }


def test_trigonal_vs_hexagonal_labels_only_those_two():
    task = TrigonalVsHexagonalTask()
    assert task.label(mat(trigonal_bi())) == 0
    assert task.label(mat(hexagonal_mg())) == 1
    assert task.label(mat(SALT)) is None
    assert task.label(mat(crystal_system="tetragonal")) is None
    assert task.metric == "roc_auc" and task.classes == ("trigonal", "hexagonal")


def test_trigonal_vs_hexagonal_keeps_intensities():
    assert TrigonalVsHexagonalTask().transforms() == [("rotate", {"max_angle": math.pi / 4})]
    assert TrigonalVsHexagonalTask().representation_defaults()["barcode"] == {"cell": "conventional", "n": 3}


# ------------------------------------------------------------------ real data


@pytest.mark.shared_data
@pytest.mark.filterwarnings("ignore:Issues encountered while parsing CIF")
@pytest.mark.skipif(not (DATA / "mp20_subset_ehull_2485.csv.gz").exists(), reason="shared data absent")
def test_spglib_crystal_systems_agree_with_materials_project():
    """Our spglib labels (symprec 0.1) against MP's own space groups, on real crystals."""
    import csv

    from harness.prepare.grouping import crystal_system

    task = CrystalSystemTask()
    agree = total = 0
    with gzip.open(DATA / "mp20_subset_ehull_2485.csv.gz", "rt") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            if i == 150:
                break
            structure = Structure.from_str(row["cif"], fmt="cif")
            ours = task.classes[task.label(mat(structure))]
            theirs = crystal_system(int(row["spacegroup.number"])).replace("trigonal", "hexagonal")
            agree += ours == theirs
            total += 1
    assert agree / total >= 0.95


@pytest.mark.shared_data
@pytest.mark.skipif(not (DATA / "mp_binary_elasticity_3953.json.gz").exists(), reason="shared data absent")
def test_moduli_tasks_label_real_elasticity_records():
    """Every record is either labelled or skipped with a reason; both classes occur."""
    with gzip.open(DATA / "mp_binary_elasticity_3953.json.gz", "rt") as fh:
        records = json.load(fh)
    for task, key in ((BulkModulusTask(), "bulk_modulus_vrh"), (ShearModulusTask(), "shear_modulus_vrh")):
        labels, skipped = [], 0
        for r in records:
            try:
                labels.append(task.label(mat(**{key: r[key]})))
            except Skip:
                skipped += 1
        assert set(labels) == {0, 1}
        assert labels.count(1) == sum(1 for r in records if r[key] is not None and r[key] > task.threshold)
        assert skipped == sum(1 for r in records if r[key] is not None and r[key] < 0)
