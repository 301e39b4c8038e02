"""JSON files in the layouts people save them in: a list of records, `{id: record}`, and
pandas' `DataFrame.to_json` orients (`columns`, the default; `index`; `split`, as in
matbench's files; `records`; `table`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness import UserError

from .messages import capped
from .sources import open_text
from .rows import SAMPLE, STRUCTURE_CANDIDATES, Table, structure_kind
from .values import typed_value

ORIENTS = ("auto", "records", "index", "columns", "split", "table")
LAYOUT_NAMES = {
    "records": "a list of records ([{column: value}], pandas orient 'records')",
    "index": "{id: record} (pandas orient 'index')",
    "columns": "{column: {id: value}} (pandas orient 'columns', DataFrame.to_json's default)",
    "split": '{"columns", "index", "data"} (pandas orient \'split\', matbench)',
    "table": '{"schema", "data"} (pandas orient \'table\')',
}


def read_json(path: Path, orient: str = "auto", structure_column: str = "", limit: int | None = None) -> Table:
    with open_text(path) as handle:
        data = json.load(handle)
    detected = orient if orient != "auto" else detect_orient(data, structure_column)
    if detected is None:
        raise UserError(
            f"cannot read {path}: unknown JSON layout (top level: {_shape(data)}); expected "
            f"{'; '.join(LAYOUT_NAMES.values())}"
        )
    try:
        columns, records, index = READERS[detected](data)
    except (TypeError, KeyError, AttributeError, ValueError):
        raise UserError(
            f"cannot read {path} with orient = {detected!r}: the file is not in that layout (top level: "
            f"{_shape(data)}); set [dataset] orient to one of {', '.join(ORIENTS)} (auto detects it)"
        ) from None
    if limit:
        records = records[:limit]
        index = index[:limit] if index is not None else None
    records = [{k: typed_value(v) for k, v in record.items()} for record in records]
    others = ", ".join(f'"{o}"' for o in ORIENTS[1:] if o != detected)
    override = f"set [dataset] orient to one of {others}"
    if orient != "auto":
        override = f'remove [dataset] orient = "{orient}" to detect the layout, or {override}'
    return Table(path, f"JSON {LAYOUT_NAMES[detected]}", override, columns, records, index=index)


def detect_orient(data: Any, structure_column: str = "") -> str | None:
    """The pandas orient of parsed JSON, or None when it is none of them."""
    if isinstance(data, list):
        return "records" if all(isinstance(r, dict) for r in data) else None
    if not isinstance(data, dict) or not data:
        return None
    if {"schema", "data"} <= set(data) and isinstance(data["data"], list):
        return "table"
    if {"columns", "data"} <= set(data) and isinstance(data["data"], list):
        return "split"
    if not all(isinstance(v, dict) for v in data.values()):
        return None
    # {column: {id: value}} or {id: {column: value}}: the structures tell which level
    # holds the column names.
    named = {structure_column} if structure_column else set(STRUCTURE_CANDIDATES)
    if named & set(data):
        return "columns"
    if any(named & set(v) for v in data.values()):
        return "index"
    # Structures under one outer key make it a column; under one inner key, a record field.
    inner_keys = list(dict.fromkeys(k for value in data.values() for k in value))
    outer_holds = any(_mostly_structures(list(value.values())[:SAMPLE]) for value in data.values())
    inner_holds = any(_mostly_structures([v.get(k) for v in list(data.values())[:SAMPLE]]) for k in inner_keys[:SAMPLE])
    if outer_holds != inner_holds:
        return "columns" if outer_holds else "index"
    # Nothing to tell them apart: a table has more rows than columns, so the level with
    # more keys holds the ids.
    return "columns" if len(inner_keys) > len(data) else "index"


def _mostly_structures(values: list[Any]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and sum(structure_kind(v) is not None for v in present) * 2 > len(present)


def _records(data: list[dict]) -> tuple[list[str], list[dict], None]:
    if not all(isinstance(r, dict) for r in data):
        raise TypeError
    return _keys(data), data, None


def _index(data: dict) -> tuple[list[str], list[dict], list[str]]:
    records = list(data.values())
    if not all(isinstance(r, dict) for r in records):
        raise TypeError
    return _keys(records), records, [str(k) for k in data]


def _columns(data: dict) -> tuple[list[str], list[dict], list[str]]:
    index = list(dict.fromkeys(k for column in data.values() for k in column))
    records = [{name: column.get(i) for name, column in data.items()} for i in index]
    return [str(c) for c in data], records, [str(i) for i in index]


def _split(data: dict) -> tuple[list[str], list[dict], list[str] | None]:
    names = [str(c) for c in data["columns"]]
    records = [dict(zip(names, values)) for values in data["data"]]
    index = data.get("index")
    return names, records, [str(i) for i in index] if index is not None else None


def _table(data: dict) -> tuple[list[str], list[dict], list[str] | None]:
    index_names = data["schema"].get("primaryKey") or []
    records = data["data"]
    if not all(isinstance(r, dict) for r in records):
        raise TypeError
    index = None
    if len(index_names) == 1:
        index = [str(r.pop(index_names[0])) for r in records]
    return _keys(records), records, index


READERS = {"records": _records, "index": _index, "columns": _columns, "split": _split, "table": _table}


def _keys(records: list[dict]) -> list[str]:
    return list(dict.fromkeys(str(k) for r in records for k in r))


def _shape(data: Any) -> str:
    if isinstance(data, dict):
        return f"an object with keys {capped(data)}"
    if isinstance(data, list):
        return f"a list of {len(data)} {type(data[0]).__name__ if data else 'items'}"
    return type(data).__name__
