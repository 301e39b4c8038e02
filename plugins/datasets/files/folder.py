"""A folder of structure files (CIF, POSCAR) with their properties in a table: CGCNN's
`id_prop.csv` (no header: id, then values; or with a header row), the folder's one other
table (CSV, TSV, Parquet, JSON), or any table named by `properties = "..."`, with an id
column."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

from harness import UserError

from .messages import capped
from .sources import detect_format, is_structure_file, open_text, printable_name
from .rows import ID_CANDIDATES, Table
from .tabular import read_table
from .values import typed_column

log = logging.getLogger(__name__)

ID_PROP_FILE = "id_prop.csv"


def structure_files(folder: Path) -> dict[str, Path]:
    """Material id -> file: `<id>.cif`, `<id>.vasp`, `<id>.poscar`, `POSCAR_<id>` ..."""
    found: dict[str, Path] = {}
    for item in sorted(folder.iterdir()):
        if not is_structure_file(item):
            continue
        stem = printable_name(item.name)
        if item.suffix.lower() in (".cif", ".vasp", ".poscar", ".contcar"):
            stem = stem[: -len(item.suffix)]
        for prefix in ("POSCAR", "CONTCAR"):
            if stem.upper().startswith(prefix) and len(stem) > len(prefix) and stem[len(prefix)] in "_-.":
                stem = stem[len(prefix) + 1 :]
        found.setdefault(stem, item)
    return found


def read_folder(folder: Path, properties: str = "", id_column: str = "", limit: int | None = None) -> Table:
    files = structure_files(folder)
    tables = [item.name for item in sorted(folder.iterdir()) if _is_table(item)]
    if not properties and not (folder / ID_PROP_FILE).is_file() and len(tables) > 1:
        raise UserError(
            f"cannot read {folder}: no {ID_PROP_FILE}, and several tables could hold the properties "
            f'({capped(map(printable_name, tables))}); set [dataset] properties = "<one of them>"'
        )
    if not properties and not (folder / ID_PROP_FILE).is_file() and tables:
        properties = tables[0]  # the folder's one table (CGCNN folders with a CSV of their own)
        log.info("file: reading the properties of %s from %s", folder.name, properties)
    if properties:
        table = _properties_table(folder, properties, id_column)
    elif (folder / ID_PROP_FILE).is_file():
        table = _id_prop(folder / ID_PROP_FILE)
    else:
        if not files:
            raise UserError(
                f"cannot read {folder}: no structure files (*.cif, *.vasp, POSCAR*) and no {ID_PROP_FILE} in the "
                "folder; point [dataset] path at the folder that holds them, or at a CSV/JSON file"
            )
        log.info(
            "file: %s has no %s and no properties table: %d structures without properties",
            folder.name,
            ID_PROP_FILE,
            len(files),
        )
        ids = list(files)
        table = Table(folder, "a folder of structure files", "", ["id"], [{"id": i} for i in ids])
    if limit:
        table.records = table.records[:limit]
    # The first column names the files; it becomes the index, not a property.
    id_name = table.columns[0]
    table.index = [str(record.pop(id_name, "")) for record in table.records]
    table.columns = table.columns[1:]
    if table.index and not any(material_id in files for material_id in table.index):
        table_file = properties_path(folder, properties) if properties else folder / ID_PROP_FILE
        raise UserError(_no_structure_matched(folder, table_file, table.index, files))
    table.structures = [_read_text(files.get(material_id)) for material_id in table.index]
    return table


def _no_structure_matched(folder: Path, table_file: Path, ids: list[str], files: dict[str, Path]) -> str:
    """Why no row found its structure file, and where structure files are (a CGCNN root
    keeps its CIFs one folder down, in cif_files/)."""
    head = (
        f"cannot read {folder}: none of the {len(ids)} ids of {table_file.name} (e.g. {ids[0]!r}) "
        "names a structure file"
    )
    if files:
        return (
            f"{head} of the folder ({capped(p.name for p in files.values())}); a file must be named "
            "<id>.cif (or .vasp, .poscar, POSCAR_<id>): fix the ids or the file names"
        )
    found = []
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        inside = structure_files(sub)
        if inside:
            found.append((sum(i in inside for i in ids), len(inside), sub))
    if not found:
        return (
            f"{head}: no structure file (*.cif, *.vasp, POSCAR*) in the folder or the folders in it; "
            "put them beside the properties table"
        )
    matched, count, sub = max(found, key=lambda f: (f[0], f[1]))
    return (
        f"{head} in the folder; {count} structure files are one folder down in {sub} ({matched} of them named "
        f'by an id): set [dataset] path = "{sub}" and properties = "{table_file}"'
    )


def _is_table(path: Path) -> bool:
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".gzip")]
    return path.is_file() and bool(suffixes) and suffixes[-1] in (".csv", ".tsv", ".parquet", ".json")


def _read_text(path: Path | None) -> str | None:
    return path.read_text(encoding="utf-8", errors="replace") if path else None


def _id_prop(path: Path) -> Table:
    """CGCNN's id_prop.csv: `id,value[,value...]`; a first row whose values are not
    numbers while the next rows' are is a header and names the columns."""
    with open_text(path) as handle:
        lines = [[c.strip() for c in row] for row in csv.reader(handle) if row and any(c.strip() for c in row)]
    if not lines:
        raise UserError(f"cannot read {path}: the file is empty; write one line `id,value` per material")
    width = max(len(row) for row in lines)
    header = _is_header(lines)
    if header:
        names = [n or f"column_{i}" for i, n in enumerate(lines[0])]
        names += [f"column_{i}" for i in range(len(names), width)]
        body = lines[1:]
    else:
        names = ["id", *("target" if i == 1 else f"target_{i}" for i in range(1, width))]
        body = lines
    columns = {
        name: typed_column([row[i] if i < len(row) else "" for row in body]) for i, name in enumerate(names[1:], 1)
    }
    records = [{names[0]: row[0], **{name: columns[name][n] for name in names[1:]}} for n, row in enumerate(body)]
    layout = f"a structure folder with {ID_PROP_FILE} ({'with' if header else 'no'} header)"
    return Table(path.parent, layout, "", names, records)


def _is_header(lines: list[list[str]]) -> bool:
    first = lines[0]
    if first[0].lower() in ID_CANDIDATES:
        return True
    if len(lines) < 2:
        return any(not _number(c) for c in first[1:])
    second = lines[1]
    return any(not _number(a) and _number(b) for a, b in zip(first[1:], second[1:]))


def _number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def properties_path(folder: Path, properties: str) -> Path:
    """`properties` relative to the folder when it lies there, else to the current directory."""
    path = Path(properties).expanduser()
    if not path.is_absolute():
        path = folder / path if (folder / path).exists() else Path.cwd() / path
    if not path.is_file():
        raise UserError(
            f"cannot read properties table {properties}: no such file (looked in {folder} and the current "
            "directory); fix [dataset] properties"
        )
    return path


def _properties_table(folder: Path, properties: str, id_column: str) -> Table:
    path = properties_path(folder, properties)
    fmt = detect_format(path, "auto")
    if path.name == ID_PROP_FILE:  # CGCNN's id_prop.csv beside the folder (a CGCNN root's cif_files/)
        table = _id_prop(path)
        return Table(folder, f"a structure folder with properties table {path.name}", "", table.columns, table.records)
    if fmt == "json":
        from .jsonfile import read_json

        table = read_json(path)
    elif fmt in ("csv", "tsv", "parquet"):
        table = read_table(path, fmt)
    else:
        raise UserError(f"cannot read properties table {path}: give a CSV, TSV, Parquet or JSON file")
    id_name = id_column or next((c for c in ID_CANDIDATES if c in table.columns), None)
    if id_name is None and not id_column and table.index is not None:  # {id: record} and the like
        id_name = "id"
        table.columns = [id_name, *table.columns]
        for record, material_id in zip(table.records, table.index):
            record[id_name] = material_id
    if id_name is None or id_name not in table.columns:
        raise UserError(
            f"cannot read properties table {path}: no id column "
            f"{'(looked for ' + ', '.join(ID_CANDIDATES) + ')' if not id_column else repr(id_column)}; "
            f"its columns: {capped(table.columns)}; set [dataset] id_column to the column naming the structure files"
        )
    for record in table.records:  # ids typed as numbers (1000.0) name files as written (1000)
        value = record.get(id_name)
        if isinstance(value, float) and value.is_integer():
            record[id_name] = str(int(value))
    columns = [id_name, *(c for c in table.columns if c != id_name)]
    return Table(folder, f"a structure folder with properties table {path.name}", "", columns, table.records)
