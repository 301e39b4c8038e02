"""What every layout reader returns (a `Table`), and how a table becomes rows: which
column holds the structures, which the ids, the rest properties."""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from harness import UserError

from .messages import capped

log = logging.getLogger(__name__)

ID_CANDIDATES = ("material_id", "mp_id", "mpid", "id", "task_id", "cif_id", "name")
STRUCTURE_CANDIDATES = ("structure", "cif", "poscar", "structures", "atoms", "crystal", "initial_structure")
SAMPLE = 20  # values looked at when guessing which column holds structures

# One row before parsing: (material id, CIF/POSCAR text or Structure dict or None, props).
RawRow = tuple[str, Any, dict[str, Any]]

_FLOAT = r"[-+]?(\d+\.?\d*|\.\d+)([eEdD][-+]?\d+)?"
_LATTICE_LINE = re.compile(rf"^\s*{_FLOAT}\s+{_FLOAT}\s+{_FLOAT}\s*$")


@dataclass
class Table:
    """Records read from one file, before the structure and id columns are chosen."""

    source: Path
    layout: str  # what was detected, as a user would say it: "CSV", "pandas 'columns' JSON"
    override: str  # how to read it otherwise, e.g. 'set [dataset] orient = "records"'; "" if nothing to choose
    columns: list[str]
    records: list[dict[str, Any]]  # column -> typed value
    index: list[str] | None = None  # row labels the layout carries (pandas index, {id: record} keys)
    structures: list[Any] | None = None  # when the layout itself holds the structures (folder, XYZ)

    def describe(self) -> str:
        return f"{self.source} (read as {self.layout})"

    def wrong_layout_hint(self) -> str:
        return f"; if that layout is wrong, {self.override}" if self.override else ""


def structure_kind(value: Any) -> str | None:
    """'dict', 'cif' or 'poscar' when `value` looks like a structure, else None."""
    if isinstance(value, dict):
        return "dict" if "lattice" in value and "sites" in value else None
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.startswith("{"):
        return "dict" if '"lattice"' in text and '"sites"' in text else None
    if "_cell_length_a" in text or text.startswith("data_"):
        return "cif"
    lines = text.splitlines()
    if (
        len(lines) >= 7
        and _is_float(lines[1].split()[0] if lines[1].split() else "")
        and all(_LATTICE_LINE.match(line) for line in lines[2:5])
    ):
        return "poscar"
    return None


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_rows(table: Table, id_column: str, structure_column: str) -> tuple[list[RawRow], bool]:
    """The table's rows as (id, raw structure, props), and whether the ids name the
    materials (an id column or an index of names, not row numbers)."""
    id_name = pick_id_column(table, id_column)
    if table.structures is not None:
        structures = table.structures
        s_name = None
    else:
        s_name = pick_structure_column(table, structure_column)
        structures = [record.get(s_name) for record in table.records]
    rows: list[RawRow] = []
    for n, (record, raw) in enumerate(zip(table.records, structures)):
        if id_name is not None:
            value = record.get(id_name)
            material_id = _id_text(value) if value is not None else str(n)
        elif table.index is not None:
            material_id = str(table.index[n])
        else:
            material_id = str(n)
        props = {k: v for k, v in record.items() if k != s_name}
        rows.append((material_id, raw, props))
    numbered = table.index is None or all(label.isdigit() for label in table.index)  # pandas' default index
    return rows, id_name is not None or not numbered


def _id_text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a numeric id column typed as floats: 1000.0 -> "1000"
    return str(value).strip()


def pick_id_column(table: Table, wanted: str) -> str | None:
    if wanted:
        if wanted not in table.columns:
            raise UserError(
                f"cannot read {table.describe()}: no id column {wanted!r} (columns: {capped(table.columns)}); "
                f"fix [dataset] id_column or leave it empty to auto-detect{table.wrong_layout_hint()}"
            )
        return wanted
    for candidate in ID_CANDIDATES:
        if candidate in table.columns:
            return candidate
    if table.index is None:
        log.info(
            "file: %s has none of the id columns %s; using the row number", table.source.name, ", ".join(ID_CANDIDATES)
        )
    return None


def pick_structure_column(table: Table, wanted: str) -> str:
    if wanted:
        if wanted not in table.columns:
            raise UserError(
                f"cannot read {table.describe()}: no structure column {wanted!r} (columns: {capped(table.columns)}); "
                f"fix [dataset] structure_column{table.wrong_layout_hint()}"
            )
        return wanted
    holding = [c for c in table.columns if _holds_structures(table.records, c)]
    for candidate in STRUCTURE_CANDIDATES:
        if candidate in holding:
            return candidate
    if holding:
        return holding[0]
    named = [c for c in STRUCTURE_CANDIDATES if c in table.columns]
    if named:  # unreadable values: their rows are skipped and counted when parsed
        return named[0]
    raise UserError(
        f"cannot read {table.describe()}: none of its columns ({capped(table.columns)}) holds structures "
        '(CIF or POSCAR text, or pymatgen Structure dicts); set [dataset] structure_column = "<column>"'
        f"{table.wrong_layout_hint()}"
    )


def _holds_structures(records: Sequence[dict[str, Any]], column: str) -> bool:
    sample = [r.get(column) for r in records[: SAMPLE * 5] if r.get(column) not in (None, "")][:SAMPLE]
    return bool(sample) and sum(structure_kind(v) is not None for v in sample) * 2 > len(sample)
