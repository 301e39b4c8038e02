"""Each layout users keep crystals in loads with at most a `path` and a `columns`
mapping; the files are written here, small, in the layout's own tool where there is one
(pandas, ASE, pymatgen)."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
from pymatgen.core import Lattice, Structure
from pymatgen.io.vasp import Poscar

from harness.sdk.api import LoadContext
from harness.services.errors import UserError
from harness_plugins.datasets.files import SOURCE_FILE, FileDataset

MODULI = {"mp-1": 25.0, "mp-2": 98.0, "mp-3": 167.0}


def crystals() -> dict[str, Structure]:
    return {
        "mp-1": Structure(Lattice.cubic(5.64), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]]),
        "mp-2": Structure(Lattice.cubic(5.43), ["Si", "Si"], [[0, 0, 0], [0.25, 0.25, 0.25]]),
        "mp-3": Structure(Lattice.hexagonal(2.5, 4.1), ["C", "C"], [[1 / 3, 2 / 3, 0.25], [2 / 3, 1 / 3, 0.75]]),
    }


def frame(structure_as: str = "dict") -> pd.DataFrame:
    """Three materials as a user's DataFrame: moduli as Python dict strings, as people
    save them from mp-api documents."""
    rows = []
    for material_id, structure in crystals().items():
        value = {"dict": structure.as_dict(), "cif": structure.to(fmt="cif"), "poscar": Poscar(structure).get_str()}
        k = MODULI[material_id]
        rows.append(
            {
                "material_id": material_id,
                "structure": value[structure_as],
                "bulk_modulus": str({"voigt": k + 1, "reuss": k - 1, "vrh": k}),
                "band_gap": 0.5,
            }
        )
    return pd.DataFrame(rows)


@pytest.fixture
def ctx(tmp_path):
    return LoadContext(tmp_path / "cache")


def load(ctx, path, **params):
    return FileDataset(path=str(path) if not isinstance(path, list) else path, **params).load(ctx)


def assert_three_crystals(materials, ids=tuple(MODULI)):
    assert [m.id for m in materials] == list(ids)
    expected = crystals()
    for material, material_id in zip(materials, MODULI):
        assert material.structure.matches(expected[material_id])


# --------------------------------------------------------------------------- JSON


@pytest.mark.parametrize("orient", ["columns", "index", "split", "records", "table"])
def test_pandas_json_in_every_orient_loads_with_a_nested_mapping(tmp_path, ctx, orient):
    path = tmp_path / f"{orient}.json"
    frame().to_json(path, orient=orient)
    materials = load(ctx, path, columns={"k_vrh": "bulk_modulus.vrh"})
    assert_three_crystals(materials)
    assert [m.props["k_vrh"] for m in materials] == list(MODULI.values())
    assert all(isinstance(m.props["k_vrh"], float) for m in materials)
    assert "structure" not in materials[0].props


def test_pandas_default_json_takes_ids_from_the_index(tmp_path, ctx):
    path = tmp_path / "by_id.json.gz"
    path.write_bytes(gzip.compress(frame().set_index("material_id").to_json().encode()))
    assert_three_crystals(load(ctx, path))


def test_dict_of_records_and_cif_strings(tmp_path, ctx):
    records = {r["material_id"]: {"cif": r["structure"], "gap": 1.0} for r in frame("cif").to_dict("records")}
    path = tmp_path / "by_id.json"
    path.write_text(json.dumps(records))
    materials = load(ctx, path, columns={"band_gap": "gap"})
    assert_three_crystals(materials)
    assert materials[0].props == {"gap": 1.0, "band_gap": 1.0}


def test_json_nested_objects_and_lists_map_by_path(tmp_path, ctx):
    structure = crystals()["mp-1"]
    record = {"id": "x", "structure": structure.as_dict(), "elasticity": {"K": {"vrh": 30}, "eig": [1, "2.5"]}}
    path = tmp_path / "nested.json"
    path.write_text(json.dumps([record]))
    material = load(ctx, path, columns={"k_vrh": "elasticity.K.vrh", "second": "elasticity.eig.1"})[0]
    assert material.props["k_vrh"] == 30.0 and material.props["second"] == 2.5


def test_a_dotted_column_name_wins_over_a_path(tmp_path, ctx):
    path = tmp_path / "dotted.json"
    record = {"structure": crystals()["mp-1"].as_dict(), "k.vrh": 7.0, "k": {"vrh": 1.0}}
    path.write_text(json.dumps([record]))
    assert load(ctx, path, columns={"k_vrh": "k.vrh"})[0].props["k_vrh"] == 7.0


def test_dict_strings_are_read_without_evaluating_code(tmp_path, ctx):
    df = frame().head(1)
    df["bulk_modulus"] = "{'vrh': __import__('os').getpid()}"
    path = tmp_path / "evil.json"
    df.to_json(path, orient="records")
    with pytest.raises(UserError, match="no value of 'bulk_modulus'.*has a key 'vrh'"):
        load(ctx, path, columns={"k_vrh": "bulk_modulus.vrh"})


# --------------------------------------------------------------------------- tables


@pytest.mark.parametrize("structure_as", ["cif", "poscar"])
@pytest.mark.parametrize("suffix, sep", [(".csv", ","), (".tsv", "\t"), (".csv.gz", ",")])
def test_csv_and_tsv_with_a_cif_or_poscar_column(tmp_path, ctx, structure_as, suffix, sep):
    path = tmp_path / f"table{suffix}"
    frame(structure_as).to_csv(path, sep=sep, index=False)
    materials = load(ctx, path, columns={"k_vrh": "bulk_modulus.vrh"})
    assert_three_crystals(materials)
    assert [m.props["k_vrh"] for m in materials] == list(MODULI.values())


def test_parquet_with_a_cif_column(tmp_path, ctx):
    pytest.importorskip("pyarrow")
    path = tmp_path / "table.parquet"
    frame("cif").to_parquet(path)
    materials = load(ctx, path, columns={"k_vrh": "bulk_modulus.vrh"})
    assert_three_crystals(materials)
    assert materials[2].props["k_vrh"] == 167.0 and materials[0].props["band_gap"] == 0.5


def test_the_structure_column_is_found_by_its_content(tmp_path, ctx):
    path = tmp_path / "odd_names.csv"
    frame("cif").rename(columns={"structure": "crystal_text", "material_id": "identifier"}).to_csv(path, index=False)
    materials = load(ctx, path, id_column="identifier")
    assert_three_crystals(materials)


# --------------------------------------------------------------------------- folders


def write_folder(folder, naming="{id}.cif"):
    folder.mkdir()
    for material_id, structure in crystals().items():
        name = naming.format(id=material_id)
        text = structure.to(fmt="cif") if name.endswith(".cif") else Poscar(structure).get_str()
        (folder / name).write_text(text)
    return folder


def test_folder_with_a_headerless_id_prop_csv(tmp_path, ctx):
    folder = write_folder(tmp_path / "cgcnn")
    (folder / "id_prop.csv").write_text("".join(f"{i},{k}\n" for i, k in MODULI.items()))
    materials = load(ctx, folder, columns={"k_vrh": "target"})
    assert_three_crystals(materials)
    assert materials[1].props == {"target": 98.0, "k_vrh": 98.0}


def test_folder_with_an_id_prop_csv_that_has_a_header(tmp_path, ctx):
    folder = write_folder(tmp_path / "cgcnn", naming="{id}.vasp")
    (folder / "id_prop.csv").write_text("cif_id,k_vrh\n" + "".join(f"{i},{k}\n" for i, k in MODULI.items()))
    materials = load(ctx, folder)
    assert_three_crystals(materials)
    assert [m.props for m in materials] == [{"k_vrh": k} for k in MODULI.values()]


def test_folder_of_poscars_with_a_separate_properties_table(tmp_path, ctx):
    folder = write_folder(tmp_path / "poscars", naming="POSCAR_{id}")
    frame().drop(columns="structure").to_csv(tmp_path / "props.csv", index=False)
    materials = load(ctx, folder, properties=str(tmp_path / "props.csv"), columns={"k_vrh": "bulk_modulus.vrh"})
    assert_three_crystals(materials)
    assert [m.props["k_vrh"] for m in materials] == list(MODULI.values())


def test_folder_table_lists_a_material_without_a_file(tmp_path, ctx):
    folder = write_folder(tmp_path / "cgcnn")
    (folder / "id_prop.csv").write_text("mp-1,1\nmp-404,2\n")
    assert [m.id for m in load(ctx, folder)] == ["mp-1"]
    assert ctx.skipped == {"no structure in the row": 1}


# --------------------------------------------------------------------------- extended XYZ


def test_extended_xyz_through_ase(tmp_path, ctx):
    from ase.io import write
    from pymatgen.io.ase import AseAtomsAdaptor

    frames = []
    for material_id, structure in crystals().items():
        atoms = AseAtomsAdaptor.get_atoms(structure)
        atoms.info.update(material_id=material_id, k_vrh=MODULI[material_id])
        frames.append(atoms)
    molecule = AseAtomsAdaptor.get_atoms(crystals()["mp-1"])
    molecule.pbc = False
    molecule.info["material_id"] = "molecule"
    path = tmp_path / "train.extxyz"
    write(path, [*frames, molecule], format="extxyz")
    materials = load(ctx, path)
    assert_three_crystals(materials)
    assert [m.props["k_vrh"] for m in materials] == list(MODULI.values())
    assert [reason for reason in ctx.skipped] == ["no periodic cell (a molecule?)"]


# --------------------------------------------------------------------------- several files


def test_several_files_pool_and_record_their_file(tmp_path, ctx, monkeypatch):
    monkeypatch.chdir(tmp_path)
    df = frame("cif")
    for name, part in (("train.csv", df.iloc[:2]), ("test.csv", df.iloc[2:])):
        part.to_csv(name, index=False)
    materials = load(ctx, ["train.csv", "test.csv"])
    assert_three_crystals(materials)
    assert [m.props[SOURCE_FILE] for m in materials] == ["train.csv", "train.csv", "test.csv"]


def test_row_number_ids_stay_unique_across_files_and_named_indexes_stay(tmp_path, ctx):
    df = frame("cif").drop(columns="material_id")
    df.iloc[:2].to_csv(tmp_path / "a.csv", index=False)
    df.iloc[2:].to_json(tmp_path / "b.json")  # index 2: a row number
    materials = load(ctx, [str(tmp_path / "a.csv"), str(tmp_path / "b.json")])
    assert [m.id for m in materials] == ["a.csv:0", "a.csv:1", "b.json:2"]
    named = frame("cif").set_index("material_id")
    named.iloc[:2].to_json(tmp_path / "c.json")
    named.iloc[2:].to_json(tmp_path / "d.json")
    assert_three_crystals(load(ctx, [str(tmp_path / "c.json"), str(tmp_path / "d.json")]))


def test_folder_with_a_json_properties_table_keyed_by_id(tmp_path, ctx):
    folder = write_folder(tmp_path / "cifs")
    (tmp_path / "props.json").write_text(json.dumps({i: {"k": k} for i, k in MODULI.items()}))
    materials = load(ctx, folder, properties=str(tmp_path / "props.json"), columns={"k_vrh": "k"})
    assert_three_crystals(materials)
    assert [m.props["k_vrh"] for m in materials] == list(MODULI.values())


def test_several_paths_from_a_toml_config(tmp_path, ctx):
    import tomllib

    from harness.services.registry import load as registry

    df = frame("cif")
    df.iloc[:1].to_csv(tmp_path / "train.csv", index=False)
    df.iloc[1:].to_json(tmp_path / "test.json")
    params = tomllib.loads(
        f'path = ["{tmp_path / "train.csv"}", "{tmp_path / "test.json"}"]\ncolumns = {{ k_vrh = "bulk_modulus.vrh" }}'
    )
    dataset = registry().create("dataset", "file", params)
    materials = dataset.load(ctx)
    assert_three_crystals(materials)
    assert [m.props["k_vrh"] for m in materials] == list(MODULI.values())


@pytest.mark.parametrize("sep", [";", "\t"])
def test_a_csv_with_another_separator_is_read_by_its_header(tmp_path, ctx, sep):
    path = tmp_path / "spreadsheet.csv"
    frame("cif").to_csv(path, sep=sep, index=False)
    assert_three_crystals(load(ctx, path))


def test_folder_whose_one_table_holds_the_properties_needs_no_setting(tmp_path, ctx):
    folder = write_folder(tmp_path / "cgcnn")
    frame().drop(columns="structure").to_csv(folder / "targets.csv", index=False)
    materials = load(ctx, folder, columns={"k_vrh": "bulk_modulus.vrh"})
    assert_three_crystals(materials)
    assert [m.props["k_vrh"] for m in materials] == list(MODULI.values())


@pytest.mark.parametrize("orient", ["columns", "index"])
@pytest.mark.parametrize("size", [1, 3])
def test_unnamed_structure_columns_tell_pandas_orients_apart_even_in_tiny_files(tmp_path, ctx, orient, size):
    path = tmp_path / "tiny.json"
    frame().head(size).rename(columns={"structure": "xtal"}).set_index("material_id").to_json(path, orient=orient)
    materials = load(ctx, path)
    assert [m.id for m in materials] == list(MODULI)[:size]
    assert "xtal" not in materials[0].props and materials[0].props["band_gap"] == 0.5
