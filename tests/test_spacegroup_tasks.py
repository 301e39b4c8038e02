"""Space-group, point-group and extinction-group tasks: labels, absences, groupings."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.symmetry.groups import SpaceGroup

from harness import Material

from harness.services import registry
from harness.sdk.metrics import get as metric, top5_accuracy
from harness_plugins.tasks.spacegroups import (
    ExtinctionGroupTask,
    PointGroupTask,
    SpaceGroupTask,
    absent_reflections,
    extinction_groups,
    extinction_index,
    point_group_symbols,
)
from harness.prepare.grouping import crystal_system

# general positions of three elements: no symmetry beyond the space group's own
GENERIC = [[0.1234, 0.2712, 0.3891], [0.4123, 0.0571, 0.1677], [0.3011, 0.4459, 0.0623]]


def lattice_for(number: int) -> Lattice:
    system = crystal_system(number)
    return {
        "triclinic": Lattice.from_parameters(5.1, 6.3, 7.2, 81, 97, 104),
        "monoclinic": Lattice.from_parameters(5.1, 6.3, 7.2, 90, 103, 90),
        "orthorhombic": Lattice.orthorhombic(5.1, 6.3, 7.2),
        "tetragonal": Lattice.tetragonal(5.1, 7.2),
        "trigonal": Lattice.hexagonal(5.1, 7.2),
        "hexagonal": Lattice.hexagonal(5.1, 7.2),
        "cubic": Lattice.cubic(14.0),  # room for 3 x 192 atoms
    }[system]


def generated(number: int) -> Material:
    """A crystal built from the space group's own operations: its label is known a priori."""
    structure = Structure.from_spacegroup(number, lattice_for(number), ["Si", "O", "Mg"], GENERIC)
    return Material(f"sg{number}", structure)


SAMPLE = [
    1,
    2,
    4,
    14,
    15,
    19,
    62,
    70,
    76,
    78,
    88,
    122,
    142,
    144,
    148,
    161,
    167,
    173,
    176,
    194,
    198,
    205,
    213,
    220,
    225,
    227,
    229,
    230,
]


def test_the_three_tasks_are_registered_with_their_class_counts_and_metrics():
    reg = registry.load()
    expected = {"space_group": 230, "point_group": 32, "extinction_group": 112}
    for name, count in expected.items():
        task = reg.create("task", name, {})
        assert len(task.classes) == count == len(set(task.classes))
        assert task.metric == "accuracy"
        assert set(task.extra_metrics) == {"macro_f1", "top5_accuracy"}


@pytest.mark.parametrize("number", SAMPLE)
def test_a_crystal_generated_from_a_space_group_is_labelled_with_it(number):
    material = generated(number)
    assert SpaceGroupTask().label(material) == number - 1
    expected_pg = SpaceGroup.from_int_number(number).point_group
    assert PointGroupTask().classes[PointGroupTask().label(material)] == expected_pg
    assert ExtinctionGroupTask().label(material) == extinction_index()[number - 1]


def test_point_groups_agree_with_pymatgens_tables_for_all_230():
    assert list(point_group_symbols()) == [SpaceGroup.from_int_number(n).point_group for n in range(1, 231)]


def test_a_looser_symprec_finds_the_higher_symmetry_of_a_slightly_distorted_cubic_crystal():
    salt = Structure.from_spacegroup("Fm-3m", Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
    distorted = salt.copy()
    distorted.apply_strain([0.004, 0.0, 0.0])
    m = Material("d", distorted)
    assert SpaceGroupTask(symprec=0.1).label(m) == 225 - 1
    assert SpaceGroupTask(symprec=1e-4).label(m) != 225 - 1


# ------------------------------------------------------------------ systematic absences


def _hkl(m=6):
    return list(itertools.product(range(-m, m + 1), repeat=3))


def test_face_centred_cubic_absences_are_the_mixed_parity_reflections():
    absent = absent_reflections(225)  # Fm-3m
    mixed = {h for h in _hkl() if len({x % 2 for x in h}) == 2}
    assert absent == mixed


def test_body_centred_cubic_absences_are_h_plus_k_plus_l_odd():
    assert absent_reflections(229) == {h for h in _hkl() if sum(h) % 2}


def test_p21c_absences_are_0k0_k_odd_and_h0l_l_odd_only():
    expected = {(0, k, 0) for k in range(-6, 7) if k % 2} | {
        (h, 0, l) for h in range(-6, 7) for l in range(-6, 7) if l % 2
    }
    assert absent_reflections(14) == expected


def test_diamond_glide_adds_0kl_with_k_plus_l_not_a_multiple_of_four():
    absent = absent_reflections(227)  # Fd-3m, origin choice irrelevant to absences
    assert (0, 2, 2) not in absent and (0, 4, 0) not in absent
    assert (0, 2, 0) in absent and (0, 4, 2) in absent  # k + l = 2, 6: forbidden by the d glide
    # diamond's missing 222 comes from the atoms on 8a, not from the space group
    assert (2, 2, 2) not in absent


def test_absences_agree_with_pymatgens_own_symmetry_operations_for_all_230():
    hkl = np.array(_hkl())
    for number in range(1, 231):
        absent = np.zeros(len(hkl), dtype=bool)
        for op in SpaceGroup.from_int_number(number).symmetry_ops:
            fixed = np.all(np.abs(hkl @ op.rotation_matrix - hkl) < 1e-8, axis=1)
            phase = hkl @ op.translation_vector
            absent |= fixed & (np.abs(phase - np.rint(phase)) > 1e-6)
        assert frozenset(map(tuple, hkl[absent].tolist())) == absent_reflections(number), number


# ------------------------------------------------------------------ extinction groups


def test_extinction_groups_partition_the_230_types_within_crystal_systems():
    groups = extinction_groups()
    assert sorted(n for g in groups for n in g) == list(range(1, 231))
    for g in groups:
        assert len({crystal_system(n) for n in g}) == 1
        assert len({absent_reflections(n) for n in g}) == 1
    assert len(groups) == 112


def test_enantiomorphs_share_an_extinction_group_and_other_screws_do_not():
    index = extinction_index()
    assert index[76 - 1] == index[78 - 1]  # P4_1, P4_3: 00l, l = 4n
    assert index[76 - 1] != index[77 - 1]  # P4_2: 00l, l = 2n
    assert index[1 - 1] == index[2 - 1]  # P1, P-1: no absences
    assert index[225 - 1] != index[229 - 1]  # F vs I centring


def test_the_grouping_does_not_change_with_a_wider_index_range():
    assert extinction_groups(8) == extinction_groups()


# ------------------------------------------------------------------ metric


def test_top5_accuracy_counts_the_true_class_among_the_five_most_probable():
    proba = np.array(
        [
            [0.30, 0.20, 0.15, 0.12, 0.10, 0.08, 0.05],  # true 4: rank 5 -> hit
            [0.30, 0.20, 0.15, 0.12, 0.10, 0.08, 0.05],  # true 5: rank 6 -> miss
            [0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.70],  # true 6: rank 1 -> hit
        ]
    )
    assert top5_accuracy(np.array([4, 5, 6]), proba) == pytest.approx(2 / 3)
    assert metric("top5_accuracy").compute is top5_accuracy


def test_the_alternative_groupings_quoted_in_the_docs_give_the_counts_they_claim():
    def count(key) -> int:
        return len({(key(n), absent_reflections(n)) for n in range(1, 231)})

    merged = {"trigonal": "hexagonal"}
    assert count(crystal_system) == 112
    assert count(lambda n: merged.get(crystal_system(n), crystal_system(n))) == 108
    assert count(lambda n: 0) == 80
