"""Held-out ABO3 compounds of real Materials Project crystals never reach a split."""

import pytest
from pymatgen.core import Composition

from conftest import MP20, prepared_mp20_stability
from harness.prepare.inputs import read_inputs


def _is_abo3(formula: str) -> bool:
    """Independent of the template matcher: pymatgen's anonymized formula, and oxygen the 3."""
    comp = Composition(formula).reduced_composition
    return comp.anonymized_formula == "ABC3" and comp["O"] == 3


@pytest.mark.skipif(not MP20.exists(), reason="needs ../shared/data")
def test_abo3_compounds_of_mp20_are_held_out_of_every_split(tmp_path):
    part, materials = prepared_mp20_stability(
        tmp_path, hold_out={"label": "perovskites", "formula": "ABO3", "placeholders": ["A", "B"]}
    )
    family = {m.id for m in materials if _is_abo3(m.structure.composition.reduced_formula)}
    assert len(family) > 10  # the data do hold ABO3 compounds, so the test can fail
    for study in part.studies:
        data = read_inputs(study.inputs)
        split = data.splits[study.seed]
        in_splits = {data.ids[i] for part_ in (split.train, split.valid, split.test) for i in part_}
        assert not family & in_splits
        assert {data.ids[i] for i in data.evaluations["perovskites"]} == family & set(data.ids)
