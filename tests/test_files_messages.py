"""Mistakes with the `file` dataset end in one line that names the cause and the fix:
the layout that was detected and how to override it, lists capped at ten names, and the
mapping a task needs when no material has its property."""

from __future__ import annotations

import json

import pytest
from pymatgen.core import Lattice, Structure

from harness.sdk.api import LoadContext
from harness.services.errors import UserError
from harness_plugins.datasets.files import FileDataset, capped, no_label_message

SALT = Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])


@pytest.fixture
def ctx(tmp_path):
    return LoadContext(tmp_path / "cache")


def error_of(ctx, **params) -> str:
    with pytest.raises(UserError) as info:
        FileDataset(**params).load(ctx)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_capped_lists_show_ten_names_then_a_count():
    assert capped([]) == "none"
    assert capped(["a", "b"]) == "a, b"
    assert capped(range(10)) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9"
    assert capped(range(1211)) == "0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and 1201 more"


def frame_without_readable_structures(tmp_path):
    """pandas' default (columns) layout whose structure column has an unusual name and
    holds nothing readable: the structures cannot tell the layout."""
    ids = [f"mp-{i}" for i in range(1211)]
    path = tmp_path / "frame.json"
    path.write_text(json.dumps({"xtal": {i: "garbage" for i in ids}, "gap": {i: 1.0 for i in ids}}))
    return path


def test_an_error_names_the_layout_it_detected_and_how_to_override_it(tmp_path, ctx):
    path = frame_without_readable_structures(tmp_path)
    message = error_of(ctx, path=str(path))
    assert "read as JSON {column: {id: value}} (pandas orient 'columns'" in message
    assert "none of its columns (xtal, gap) holds structures" in message
    assert 'structure_column = "<column>"' in message
    assert 'if that layout is wrong, set [dataset] orient to one of "records", "index", "split", "table"' in message
    # following the advice reads the rows; their unreadable structures are counted
    assert FileDataset(path=str(path), structure_column="xtal", limit=5).load(ctx) == []
    assert sum(ctx.skipped.values()) == 5 and all("unparseable structure" in r for r in ctx.skipped)


def test_a_misread_layout_lists_its_keys_capped(tmp_path, ctx):
    """The issue's case: 1,211 material ids taken for columns make one short line."""
    path = frame_without_readable_structures(tmp_path)
    message = error_of(ctx, path=str(path), orient="index")
    assert "read as JSON {id: record} (pandas orient 'index')" in message
    assert "mp-9 and 1201 more" in message and "mp-10," not in message
    assert 'remove [dataset] orient = "index" to detect the layout' in message
    assert len(message) < 600


def test_a_forced_orient_that_does_not_fit_says_so(tmp_path, ctx):
    path = tmp_path / "list.json"
    path.write_text(json.dumps([{"structure": SALT.as_dict()}]))
    message = error_of(ctx, path=str(path), orient="split")
    assert "with orient = 'split'" in message and "auto detects it" in message


def test_a_wrong_structure_column_lists_the_columns_capped(tmp_path, ctx):
    path = tmp_path / "wide.csv"
    header = ["material_id", "cif", *(f"f{i}" for i in range(30))]
    path.write_text(",".join(header) + "\n")
    message = error_of(ctx, path=str(path), structure_column="structure")
    assert "no structure column 'structure'" in message and "and 22 more" in message
    assert "fix [dataset] structure_column" in message


def test_a_table_without_structures_says_where_it_looked(tmp_path, ctx):
    path = tmp_path / "props_only.csv"
    path.write_text("material_id,band_gap\nmp-1,0.5\n")
    message = error_of(ctx, path=str(path))
    assert "read as CSV" in message and "none of its columns (material_id, band_gap) holds structures" in message
    assert 'structure_column = "<column>"' in message


def test_a_mapping_to_a_missing_key_lists_the_keys_there_are(tmp_path, ctx):
    path = tmp_path / "moduli.json"
    record = {"structure": SALT.as_dict(), "bulk_modulus": "{'voigt': 1.0, 'reuss': 2.0, 'vrh': 1.5}"}
    path.write_text(json.dumps([record]))
    message = error_of(ctx, path=str(path), columns={"k_vrh": "bulk_modulus.VRH"})
    assert "no value of 'bulk_modulus'" in message and "key 'VRH'" in message
    assert "its keys: voigt, reuss, vrh" in message


def test_a_mapping_to_a_missing_column_lists_the_columns(tmp_path, ctx):
    path = tmp_path / "x.json"
    path.write_text(json.dumps([{"structure": SALT.as_dict(), "k": 1.0}]))
    message = error_of(ctx, path=str(path), columns={"k_vrh": "K_VRH"})
    assert "has no column 'K_VRH'; its columns: k" in message


def test_a_folder_without_structures_or_a_table(tmp_path, ctx):
    (tmp_path / "empty").mkdir()
    message = error_of(ctx, path=str(tmp_path / "empty"))
    assert "no structure files" in message and "id_prop.csv" in message


def test_a_properties_table_without_an_id_column(tmp_path, ctx):
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / "a.cif").write_text(SALT.to(fmt="cif"))
    (tmp_path / "props.csv").write_text("file,gap\na,1.0\n")
    message = error_of(ctx, path=str(folder), properties=str(tmp_path / "props.csv"))
    assert "no id column" in message and "its columns: file, gap" in message and "id_column" in message
    materials = FileDataset(path=str(folder), properties=str(tmp_path / "props.csv"), id_column="file").load(ctx)
    assert [(m.id, m.props) for m in materials] == [("a", {"gap": 1.0})]


def test_no_label_message_names_what_the_task_reads_and_the_mapping_that_supplies_it():
    columns = ["material_id", "formula", "bulk_modulus", "elastic_tensor"] + [f"x{i}" for i in range(20)]
    message = no_label_message("bulk_modulus", ("k_vrh", "bulk_modulus_vrh"), columns)
    assert "no material has the property 'k_vrh' or 'bulk_modulus_vrh'" in message
    assert 'columns = { k_vrh = "bulk_modulus" }' in message  # the closest column
    assert "and 14 more" in message
    unrelated = no_label_message("stability", ("e_above_hull",), ["material_id", "cif"])
    assert 'columns = { e_above_hull = "<your column>" }' in unrelated and '"<column>.<key>"' in unrelated


def test_every_task_declares_the_properties_its_label_reads():
    """`Task.reads` is what the no-label message names: a task that labels nothing from
    a material without properties must list them, and each listed name must label."""
    from harness.sdk.api import Material
    from harness.services.registry import load

    registry = load()
    # hexagonal, so that tasks labelling from the structure (e.g. trigonal vs hexagonal) do
    hcp = Structure(Lattice.hexagonal(3.2, 5.2), ["Mg", "Mg"], [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]])
    bare = Material("m", hcp, {})
    needed = {"threshold": {"column": "energy_per_atom"}}  # tasks with a required parameter
    for name in registry.names("task"):
        task = registry.create("task", name, needed.get(name, {}))
        if not task.reads:
            assert task.label(bare) is not None, f"{name} labels nothing without props but declares no reads"
            continue
        assert task.label(bare) is None, name
        for prop in task.reads:
            assert task.label(Material("m", hcp, {prop: 1.0})) is not None, f"{name} does not read {prop}"


def test_the_command_line_prints_the_config_section_it_names(tmp_path, capsys):
    """`[dataset]` in a message is text, not console markup to swallow."""
    from harness.cli import main

    config = tmp_path / "c.toml"
    config.write_text(
        'tasks = ["metallicity"]\nrepresentations = ["barcode"]\nperturbations = ["none"]\n'
        'models = ["random_forest"]\n[dataset]\nname = "file"\npath = "missing.csv"\n'
    )
    assert main(["run", str(config), "--results", str(tmp_path / "results")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no such file or folder" in err and "fix [dataset] path" in err


def test_a_folder_with_several_tables_asks_which_holds_the_properties(tmp_path, ctx):
    folder = tmp_path / "cifs"
    folder.mkdir()
    (folder / "a.cif").write_text(SALT.to(fmt="cif"))
    (folder / "train.csv").write_text("id,gap\na,1.0\n")
    (folder / "test.csv").write_text("id,gap\n")
    message = error_of(ctx, path=str(folder))
    assert "several tables could hold the properties (test.csv, train.csv)" in message
    assert 'set [dataset] properties = "<one of them>"' in message
    assert [m.props for m in FileDataset(path=str(folder), properties="train.csv").load(ctx)] == [{"gap": 1.0}]
