"""group_by = "formula_spacegroup": no test material shares its reduced formula and space
group with a training material."""

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from conftest import MP20, prepared_mp20_stability
from harness.prepare import grouping
from harness.sdk.api import Material
from harness.services.errors import UserError
from harness.prepare.inputs import read_inputs
from harness.prepare.splits import stratified_split


def _assert_no_leak(keys, split):
    train = {keys[i] for i in split.train}
    assert not any(keys[i] in train for i in split.test)
    assert not any(keys[i] in train for i in split.valid)


def test_polymorph_copies_stay_on_one_side():
    rng = np.random.default_rng(0)
    materials = []
    for i in range(120):  # 40 compounds, three strained copies each: same formula and group
        a = 4 + (i // 3) * 0.05
        s = Structure(Lattice.cubic(a * rng.uniform(0.98, 1.02)), ["Cs", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
        s.replace_species(
            {
                "Cs": ["Cs", "K", "Rb", "Na", "Li", "Tl", "Ag", "Cu"][(i // 3) % 8],
                "Cl": ["Cl", "Br", "I", "F", "H"][(i // 24) % 5],
            }
        )
        materials.append(Material(f"m{i}", s.scale_lattice(s.volume * (1 + i // 3 * 0.01))))
    keys = np.asarray(grouping.group_keys(materials, "formula_spacegroup"))
    y = np.arange(len(materials)) // 3 % 2
    for seed in (0, 1, 2):
        _assert_no_leak(keys, stratified_split(y, seed, groups=keys))
    assert len(set(keys)) == 40


@pytest.mark.skipif(not MP20.exists(), reason="needs ../shared/data")
def test_runner_splits_of_real_mp20_data_do_not_leak(tmp_path):
    part, materials = prepared_mp20_stability(tmp_path)
    by_id = {m.id: m for m in materials}
    for study in part.studies:
        data = read_inputs(study.inputs)
        keys = grouping.group_keys([by_id[i] for i in data.ids], "formula_spacegroup")
        assert len(set(keys)) < len(keys)  # the data do hold duplicates, so the test can fail
        _assert_no_leak(keys, data.splits[study.seed])


def test_too_few_groups_is_a_user_error():
    with pytest.raises(UserError, match="too few"):
        stratified_split(np.array([0, 1, 0, 1]), 0, groups=np.array(["a", "a", "b", "b"]))
