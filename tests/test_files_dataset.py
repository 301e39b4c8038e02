"""The `file` dataset on tiny files made here: layouts, typing, skips, errors, cache."""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import re
import warnings

import numpy as np
import pytest
from pymatgen.core import Lattice, Structure

from harness.sdk.api import LoadContext
from harness.services.errors import UserError
from harness_plugins.datasets import files
from harness_plugins.datasets.files import compact, parse
from harness_plugins.datasets.files import FileDataset


FCC = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]


def nacl() -> Structure:
    """Rock salt, conventional cell (explicit: `from_spacegroup` costs seconds)."""
    cl = [[(x + 0.5) % 1, y, z] for x, y, z in FCC]
    return Structure(Lattice.cubic(5.64), ["Na"] * 4 + ["Cl"] * 4, FCC + cl)


def silicon() -> Structure:
    return Structure(Lattice.cubic(5.43), ["Si"] * 2, [[0, 0, 0], [0.25, 0.25, 0.25]])


def disordered() -> Structure:
    return Structure(Lattice.cubic(3.0), [{"Fe": 0.5, "Ni": 0.5}], [[0, 0, 0]])


def write_csv(path, rows, header, gz=False):
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    data = buffer.getvalue().encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


@pytest.fixture
def ctx(tmp_path):
    return LoadContext(tmp_path / "cache")


@pytest.fixture
def small_csv(tmp_path):
    rows = [
        ["mp-1", "0.0", "metal", nacl().to(fmt="cif")],
        ["mp-2", "1.1", "semi", silicon().to(fmt="cif")],
        ["mp-3", "", "bad", "this is not a CIF"],
        ["mp-4", "2.5", "alloy", disordered().to(fmt="cif")],
    ]
    return write_csv(tmp_path / "small.csv.gz", rows, ["material_id", "band_gap", "kind", "cif"], gz=True)


def test_csv_of_cif_strings_loads_with_typed_columns_and_skips_bad_rows(small_csv, ctx):
    materials = FileDataset(path=str(small_csv)).load(ctx)
    assert [m.id for m in materials] == ["mp-1", "mp-2", "mp-4"]
    assert sum(ctx.skipped.values()) == 1
    assert all("unparseable structure" in reason for reason in ctx.skipped)
    first = materials[0]
    assert first.structure.composition.reduced_formula == "NaCl"
    assert len(first.structure) == 8  # the conventional cell, as written
    assert first.props["band_gap"] == 0.0 and isinstance(first.props["band_gap"], float)
    assert first.props["kind"] == "metal"
    assert "cif" not in first.props  # the structure column is not repeated as a prop
    alloy = materials[2].structure
    assert not alloy.is_ordered and alloy[0].species.get_el_amt_dict() == {"Fe": 0.5, "Ni": 0.5}


def test_columns_alias_properties_and_keep_the_originals(small_csv, ctx):
    materials = FileDataset(path=str(small_csv), columns={"gap": "band_gap"}).load(ctx)
    assert materials[1].props["gap"] == materials[1].props["band_gap"] == 1.1


def test_columns_naming_a_missing_column_is_a_user_error(small_csv, ctx):
    with pytest.raises(UserError, match="no column 'k_vrh_missing'"):
        FileDataset(path=str(small_csv), columns={"k_vrh": "k_vrh_missing"}).load(ctx)


def test_empty_cells_become_none_and_limit_takes_a_sample(small_csv, ctx):
    materials = FileDataset(path=str(small_csv), limit=2).load(ctx)
    assert len(materials) + sum(ctx.skipped.values()) == 2  # a sample of 2 rows (the bad CIF counted if drawn)
    assert {m.id for m in materials} <= {"mp-1", "mp-2", "mp-4"}


def test_relative_path_is_relative_to_the_current_directory(small_csv, ctx, monkeypatch):
    monkeypatch.chdir(small_csv.parent)
    assert len(FileDataset(path=small_csv.name).load(ctx)) == 3


def test_id_column_falls_back_to_mp_id_then_row_number(tmp_path, ctx):
    path = write_csv(tmp_path / "noid.csv", [["7", nacl().to(fmt="cif")]], ["value", "cif"])
    assert [m.id for m in FileDataset(path=str(path)).load(ctx)] == ["0"]
    path = write_csv(tmp_path / "mpid.csv", [["mp-9", nacl().to(fmt="cif")]], ["mp_id", "cif"])
    assert [m.id for m in FileDataset(path=str(path)).load(ctx)] == ["mp-9"]


def test_json_list_of_structure_dicts(tmp_path, ctx):
    records = [
        {"mp_id": "mp-10", "formula": "NaCl", "structure": nacl().as_dict(), "bulk_modulus_vrh": 25, "flag": True},
        {"mp_id": "mp-11", "formula": "Si", "structure": silicon().as_dict(), "bulk_modulus_vrh": 88.5, "flag": False},
        {"mp_id": "mp-12", "formula": "X", "structure": {"lattice": "broken"}, "bulk_modulus_vrh": 1.0, "flag": False},
    ]
    path = tmp_path / "elastic.json.gz"
    path.write_bytes(gzip.compress(json.dumps(records).encode()))
    materials = FileDataset(path=str(path), columns={"k_vrh": "bulk_modulus_vrh"}).load(ctx)
    assert [m.id for m in materials] == ["mp-10", "mp-11"]
    assert sum(ctx.skipped.values()) == 1
    assert materials[0].props["k_vrh"] == 25.0 and isinstance(materials[0].props["k_vrh"], float)
    assert materials[0].props["flag"] is True
    assert materials[1].structure == silicon()


def test_matbench_split_layout_takes_ids_from_the_index(tmp_path, ctx):
    data = {
        "index": ["mb-x-1", "mb-x-2"],
        "columns": ["structure", "gap pbe"],
        "data": [[nacl().as_dict(), 4.2], [silicon().as_dict(), 0.6]],
    }
    path = tmp_path / "matbench_x.json"
    path.write_text(json.dumps(data))
    materials = FileDataset(path=str(path)).load(ctx)
    assert [m.id for m in materials] == ["mb-x-1", "mb-x-2"]
    assert materials[1].props == {"gap pbe": 0.6}


def test_cif_folder_with_id_prop_csv(tmp_path, ctx):
    folder = tmp_path / "cgcnn"
    folder.mkdir()
    (folder / "id_prop.csv").write_text("1000,2.5\n1001,0\n1002,1.0\n")
    (folder / "1000.cif").write_text(nacl().to(fmt="cif"))
    (folder / "1001.cif").write_text(silicon().to(fmt="cif"))
    # 1002.cif is missing
    materials = FileDataset(path=str(folder), columns={"band_gap": "target"}).load(ctx)
    assert [m.id for m in materials] == ["1000", "1001"]
    assert materials[0].props == {"target": 2.5, "band_gap": 2.5}
    assert ctx.skipped == {"no structure in the row": 1}


def test_duplicate_ids_keep_the_first_row(tmp_path, ctx):
    cif = nacl().to(fmt="cif")
    path = write_csv(tmp_path / "dup.csv", [["a", "1", cif], ["a", "2", cif]], ["id", "v", "cif"])
    materials = FileDataset(path=str(path)).load(ctx)
    assert len(materials) == 1 and materials[0].props["v"] == 1.0
    assert ctx.skipped == {"duplicate material id": 1}


@pytest.mark.parametrize(
    "name, fix",
    [("missing.csv", "no such file"), ("data.txt", "set [dataset] format")],
)
def test_unreadable_paths_are_user_errors(tmp_path, ctx, name, fix):
    (tmp_path / "data.txt").write_text("x")
    with pytest.raises(UserError, match=f"cannot read .*{re.escape(name)}.*{re.escape(fix)}"):
        FileDataset(path=str(tmp_path / name)).load(ctx)


def test_a_corrupt_gzip_is_a_user_error(tmp_path, ctx):
    path = tmp_path / "broken.csv.gz"
    path.write_bytes(gzip.compress(b"material_id,cif\nmp-1,x\n")[:-12])
    with pytest.raises(UserError, match="cannot read"):
        FileDataset(path=str(path)).load(ctx)


def test_missing_structure_column_names_the_fix(tmp_path, ctx):
    path = write_csv(tmp_path / "x.csv", [["mp-1", "1.0"]], ["material_id", "band_gap"])
    with pytest.raises(UserError, match="structure_column"):
        FileDataset(path=str(path)).load(ctx)


def test_bad_format_parameter_is_a_user_error():
    with pytest.raises(UserError, match="format"):
        FileDataset(path="x", format="xlsx")


def test_parser_warnings_are_summarised_not_printed(tmp_path, ctx, caplog):
    # Coordinates written as 0.3333 make pymatgen's CIF parser warn that it rounded them
    # (oxidation states keep these CIFs off the gemmi fast path, which does not warn).
    hcp = Structure(Lattice.hexagonal(3.2, 5.2), ["Mg", "Mg"], [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]])
    hcp.add_oxidation_state_by_element({"Mg": 2})
    cif = hcp.to(fmt="cif").replace("0.33333333", "0.3333").replace("0.66666667", "0.6667")
    path = write_csv(tmp_path / "w.csv", [[f"m{i}", cif] for i in range(3)], ["id", "cif"])
    with warnings.catch_warnings(record=True) as leaked, caplog.at_level(logging.INFO):
        warnings.simplefilter("always")
        dataset = FileDataset(path=str(path))
        materials = dataset.load(ctx)
    assert len(materials) == 3
    assert not [w for w in leaked if "CIF" in str(w.message)]
    assert sum(dataset.parse_warnings.values()) == 3
    summaries = [r for r in caplog.records if "parser warnings" in r.getMessage()]
    assert len(summaries) == 1 and "rounded" in summaries[0].getMessage()


def test_second_load_reads_the_cache_without_parsing(small_csv, tmp_path, monkeypatch):
    first_ctx = LoadContext(tmp_path / "cache")
    first = FileDataset(path=str(small_csv)).load(first_ctx)

    def no_parsing(*args, **kwargs):
        raise AssertionError("parsed again despite a cache")

    monkeypatch.setattr(parse, "parse_rows", no_parsing)
    second_ctx = LoadContext(tmp_path / "cache")
    second = FileDataset(path=str(small_csv)).load(second_ctx)
    assert [m.id for m in second] == [m.id for m in first]
    assert [m.structure for m in second] == [m.structure for m in first]
    assert [m.props for m in second] == [m.props for m in first]
    assert second_ctx.skipped == first_ctx.skipped  # skips are reported on cache hits too
    # a different `columns` mapping reuses the same cache
    assert FileDataset(path=str(small_csv), columns={"gap": "band_gap"}).load(LoadContext(tmp_path / "cache"))


def test_loaded_materials_carry_their_content_hash_and_build_structures_on_demand(tmp_path, ctx, monkeypatch):
    from harness.services.content import material_hash, structure_hash

    oxidised = nacl()
    oxidised.add_oxidation_state_by_element({"Na": 1, "Cl": -1})
    rows = [["a", nacl().to(fmt="cif")], ["b", disordered().to(fmt="cif")], ["c", oxidised.to(fmt="cif")]]
    path = write_csv(tmp_path / "h.csv", rows, ["id", "cif"])
    FileDataset(path=str(path)).load(ctx)  # parse and cache
    built = []
    original = compact._LazyBuilder.build
    monkeypatch.setattr(compact._LazyBuilder, "build", lambda self, i: built.append(i) or original(self, i))
    materials = FileDataset(path=str(path)).load(LoadContext(tmp_path / "cache"))
    hashes = [material_hash(m) for m in materials]
    assert built == []  # hashing needs no structure
    assert hashes == [structure_hash(m.structure) for m in materials]  # the same as computed from one
    assert sorted(built) == [0, 1, 2]
    assert len(set(hashes)) == 3
    assert materials[1].structure[0].species.as_dict() == {"Fe": 0.5, "Ni": 0.5}
    assert materials[2].structure is materials[2].structure  # built once


def test_p1_fast_path_reads_what_pymatgen_reads_and_leaves_the_rest_to_it():
    from pymatgen.io.cif import CifWriter

    from harness_plugins.datasets.p1cif import read_p1_cif

    salt = nacl()
    lattice, frac, species = read_p1_cif(salt.to(fmt="cif"))
    np.testing.assert_array_equal(lattice, files.compact_structure(files.parse_structure(salt.to(fmt="cif")))[0])
    assert Structure(lattice, [s[0][0] for s in species], frac) == salt
    oxidised = nacl()
    oxidised.add_oxidation_state_by_element({"Na": 1, "Cl": -1})
    symmetrised = str(CifWriter(nacl(), symprec=0.1))  # Fm-3m with its 192 operations
    for cif in (disordered().to(fmt="cif"), oxidised.to(fmt="cif"), symmetrised, "not a CIF"):
        assert read_p1_cif(cif) is None
    parsed = files.parse_chunk([("s", symmetrised)])[0][0][1]  # pymatgen expands the symmetry
    assert len(parsed[1]) == 8


def test_changed_file_content_misses_the_cache(tmp_path, ctx):
    path = write_csv(tmp_path / "c.csv", [["a", nacl().to(fmt="cif")]], ["id", "cif"])
    assert FileDataset(path=str(path)).load(ctx)[0].structure.composition.reduced_formula == "NaCl"
    write_csv(path, [["a", silicon().to(fmt="cif")]], ["id", "cif"])
    assert FileDataset(path=str(path)).load(ctx)[0].structure.composition.reduced_formula == "Si"


def test_parallel_parse_matches_serial_parse(small_csv, tmp_path, monkeypatch):
    serial = FileDataset(path=str(small_csv)).load(LoadContext(tmp_path / "a"))
    monkeypatch.setattr(parse, "PARALLEL_MIN_ROWS", 0)
    monkeypatch.setattr(parse, "CHUNK_ROWS", 1)
    seen = []
    ctx = LoadContext(tmp_path / "b", progress=lambda it, total, description: seen.append(total) or it)
    parallel = FileDataset(path=str(small_csv)).load(ctx)
    assert [(m.id, m.structure) for m in parallel] == [(m.id, m.structure) for m in serial]
    assert seen == [4]  # the progress bar counts rows


def test_registered_and_created_from_toml_parameters(small_csv, ctx):
    from harness.services.registry import load

    registry = load()
    dataset = registry.create("dataset", "file", {"path": str(small_csv), "columns": {"gap": "band_gap"}, "limit": 1})
    assert isinstance(dataset, FileDataset) and dataset.limit == 1
    assert [m.props["gap"] for m in dataset.load(ctx)] == [0.0]
    with pytest.raises(UserError, match="no parameter 'colums'"):
        registry.create("dataset", "file", {"path": "x", "colums": {}})
