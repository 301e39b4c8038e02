"""Held-out ABO3 compounds of real Materials Project crystals never reach a split."""

import pytest
from pymatgen.core import Composition
from rich.console import Console

from conftest import SHARED_DATA
from harness import config, registry
from harness.inputs import read_inputs
from harness.plan import load, make_plan
from harness.prepare import prepare
from harness.store import Store

MP20 = SHARED_DATA / "mp20_subset_ehull_2485.csv.gz"


def _is_abo3(formula: str) -> bool:
    """Independent of the template matcher: pymatgen's anonymized formula, and oxygen the 3."""
    comp = Composition(formula).reduced_composition
    return comp.anonymized_formula == "ABC3" and comp["O"] == 3


@pytest.mark.skipif(not MP20.exists(), reason="needs ../shared/data")
def test_abo3_compounds_of_mp20_are_held_out_of_every_split(tmp_path):
    conf = config.parse({
        "dataset": {"name": "file", "path": str(MP20),
                    "hold_out": {"label": "perovskites", "formula": "ABO3", "placeholders": ["A", "B"]}},
        "tasks": ["stability"], "representations": [{"name": "barcode", "n": 3}], "models": ["random_forest"],
        "run": {"split": {"group_by": "formula_spacegroup"}, "workers": 1},
    })
    console = Console(quiet=True)
    plan = make_plan(conf, registry.load(), Store(f"sqlite:///{tmp_path}/r.sqlite"), console)
    (part,) = plan.parts
    prepare(conf, part, part.studies, console)
    materials = (part.loaded or load(part.dataset, part.spec, console)).materials
    family = {m.id for m in materials if _is_abo3(m.structure.composition.reduced_formula)}
    assert len(family) > 10  # the data do hold ABO3 compounds, so the test can fail
    for study in part.studies:
        data = read_inputs(study.inputs)
        split = data.splits[study.seed]
        in_splits = {data.ids[i] for part_ in (split.train, split.valid, split.test) for i in part_}
        assert not family & in_splits
        assert {data.ids[i] for i in data.evaluations["perovskites"]} == family & set(data.ids)
