"""`concat`: vector representations side by side, built by name through the public API."""

from __future__ import annotations

import numpy as np
import pytest
from harness_plugins.representations.concat import parse_parts
from pymatgen.core import Lattice, Structure

from harness.services import registry
from harness.sdk.api import Skip
from harness.services.errors import UserError


def _structures():
    return [
        Structure(Lattice.cubic(4.2), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        Structure(Lattice.cubic(5.43), ["Si"] * 2, [[0, 0, 0], [0.25, 0.25, 0.25]]),
    ]


def test_concat_keeps_each_parts_columns_and_values_in_order():
    reg = registry.load()
    both = reg.create("representation", "concat", {"of": "barcode(n=27)+composition(stats=false)"})
    bar = reg.create("representation", "barcode", {"n": 27})
    comp = reg.create("representation", "composition", {"stats": False})
    assert both.columns() == [f"barcode(n=27):{c}" for c in bar.columns()] + [
        f"composition(stats=false):{c}" for c in comp.columns()
    ]
    got = both.featurize_many(_structures())
    for x, s in zip(got, _structures()):
        expected = np.concatenate([bar.featurize_many([s])[0], comp.featurize_many([s])[0]])
        np.testing.assert_array_equal(x, expected.astype(np.float32))
        assert x.shape == (len(both.columns()),)
    swapped = reg.create("representation", "concat", {"of": "composition(stats=false)+barcode(n=27)"})
    np.testing.assert_array_equal(
        swapped.featurize(_structures()[0])[: len(comp.columns())], comp.featurize(_structures()[0]).astype(np.float32)
    )


def test_concat_identity_carries_its_parts():
    reg = registry.load()
    a = reg.create("representation", "concat", {"of": "composition+barcode(n=27)"})
    b = reg.create("representation", "concat", {"of": "composition+barcode(n=125)"})
    assert a.params() != b.params() and a.title != b.title
    assert "barcode=" in str(a.version) and "composition=" in str(a.version)


def test_a_failing_part_skips_the_crystal():
    reg = registry.load()
    rep = reg.create("representation", "concat", {"of": "composition(max_z=16)+barcode(n=27)"})
    out = rep.featurize_many(_structures())  # Cl (Z = 17) is beyond max_z
    assert isinstance(out[0], Skip) and "max_z" in str(out[0]) and not isinstance(out[1], Skip)


def test_concat_uses_plugins_loaded_with_the_run():
    import toy_plugin  # tests/toy_plugin.py

    reg = registry.load([toy_plugin])
    vectors = [
        n
        for n in reg.names("representation")
        if reg.get("representation", n).cls.kind == "vector" and reg.get("representation", n).plugin == "toy_plugin"
    ]
    if not vectors:
        pytest.skip("the toy plugin registers no vector representation")
    rep = reg.create("representation", "concat", {"of": f"composition+{vectors[0]}"})
    assert rep.parts[1].name == vectors[0]


def test_bad_parts_are_user_errors():
    reg = registry.load()
    with pytest.raises(UserError, match="unknown representation 'barcod'"):
        reg.create("representation", "concat", {"of": "composition+barcod"})
    with pytest.raises(UserError, match="not a vector"):
        reg.create("representation", "concat", {"of": "composition+xrd_cloud"})
    with pytest.raises(UserError, match="names one part"):
        reg.create("representation", "concat", {"of": "composition"})
    with pytest.raises(UserError, match="has no parameter 'q'"):
        reg.create("representation", "concat", {"of": "composition+barcode(q=3)"})


def test_parse_parts_reads_titles():
    assert parse_parts('composition+barcode(n=125,cell=conventional, radiation="neutron")') == [
        ("composition", {}),
        ("barcode", {"n": 125, "cell": "conventional", "radiation": "neutron"}),
    ]
