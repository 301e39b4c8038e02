"""Cell values as properties: typing of text columns, and keys read from nested values
(`columns = { k_vrh = "bulk_modulus.vrh" }`)."""

from __future__ import annotations

import ast
import json
import math
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

_BOOLS = {"true": True, "false": False}


def typed_column(cells: list[Any]) -> list[Any]:
    """A text column as floats when every non-empty cell is a number, booleans when all
    are true/false, else strings; empty cells become None (not labelled)."""
    stripped = [c.strip() if isinstance(c, str) else c for c in cells]
    present = [c for c in stripped if c]
    if present and all(isinstance(c, str) and c.lower() in _BOOLS for c in present):
        return [_BOOLS[c.lower()] if c else None for c in stripped]
    try:
        numbers = [float(c) if c else None for c in stripped]
    except (TypeError, ValueError):
        return [c if c else None for c in stripped]
    return [None if x is None or math.isnan(x) else x for x in numbers]


def typed_value(value: Any) -> Any:
    """A value from JSON, Parquet or ASE as a property: numbers become floats (NaN None),
    numpy scalars and arrays plain Python; booleans, strings and containers stay."""
    if isinstance(value, np.generic):
        value = value.item()
    elif isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    return value


def lookup(props: Mapping[str, Any], column: str) -> Any:
    """The value `column` names: a property itself, or a key inside one, written
    "column.key[.key...]"; the nested value may be an object or a JSON/Python dict string
    (e.g. "{'voigt': 167.0, 'vrh': 167.0}"). None when absent."""
    if column in props:
        return props[column]
    head, path = split_path(column, props)
    if head is None:
        return None
    value = props.get(head)
    for key in path:
        value = _child(as_container(value), key)
        if value is None:
            return None
    return typed_value(_number(value))


def split_path(column: str, names: Mapping[str, Any] | set[str]) -> tuple[str | None, list[str]]:
    """('bulk_modulus', ['vrh']) for 'bulk_modulus.vrh' when 'bulk_modulus' is a column
    (the longest column name that prefixes the path wins: columns may contain dots)."""
    parts = column.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        head = ".".join(parts[:cut])
        if head in names:
            return head, parts[cut:]
    return None, []


def as_container(value: Any) -> Any:
    """A dict or list from a nested value or from its JSON or Python-literal text (read
    with `ast.literal_eval`, which evaluates no code); anything else unchanged."""
    if isinstance(value, str):
        return _parse_literal(value.strip())
    return value


def nested_keys(value: Any) -> list[str]:
    """The keys a nested value offers (for messages)."""
    container = as_container(value)
    if isinstance(container, dict):
        return [str(k) for k in container]
    if isinstance(container, list):
        return [str(i) for i in range(len(container))]
    return []


@lru_cache(maxsize=4096)
def _parse_literal(text: str) -> Any:
    if not text or text[0] not in "{[":
        return text
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return text


def _child(container: Any, key: str) -> Any:
    if isinstance(container, dict):
        return container.get(key)
    if isinstance(container, (list, tuple)) and key.lstrip("-").isdigit():
        index = int(key)
        return container[index] if -len(container) <= index < len(container) else None
    return None


def _number(value: Any) -> Any:
    """Numeric text inside a nested value ("167.0") reads as a number."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
