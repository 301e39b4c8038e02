"""A model's search space as data: its declared `search_space` with the TOML's `space`
overrides applied and checked, so an unknown or ill-typed key fails when the grid is
resolved, before any data is loaded (the plan's concern, not the tuner's)."""

from __future__ import annotations

import typing
from typing import Any, Mapping

from harness.sdk.api import Choice, Dimension, Model, Range
from harness.services.errors import UserError


def search_space(model: Model) -> dict[str, Dimension]:
    """The model's declared space with the TOML's `space` overrides applied and checked.

    An override is a list (choices), a table `{low, high, log}` (a range) or a single
    value (the dimension fixed); naming anything but a hyperparameter is a `UserError`."""
    valid = model.hyperparameters()
    space: dict[str, Dimension] = dict(model.search_space)
    for key, value in model.space.items():
        if key not in valid:
            raise UserError(
                f"model {model.name!r}: space names {key!r}, which is not a hyperparameter; "
                f"valid: {', '.join(valid) or 'none'}"
            )
        space[key] = _dimension(model, key, value)
    return space


def _dimension(model: Model, key: str, value: Any) -> Dimension:
    where = f"model {model.name!r}: space.{key}"
    if isinstance(value, (Choice, Range)):
        return value
    if isinstance(value, Mapping):
        unknown = set(value) - {"low", "high", "log"}
        if unknown or not {"low", "high"} <= set(value):
            raise UserError(f"{where} = {dict(value)!r}: a range is {{low = ..., high = ..., log = false}}")
        try:
            return Range(value["low"], value["high"], bool(value.get("log", False)))
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise UserError(f"{where} is empty; give at least one value")
    return Choice(*[_coerce(model, key, v, where) for v in values])


def _coerce(model: Model, key: str, value: Any, where: str) -> Any:
    import pydantic

    try:
        annotation = typing.get_type_hints(type(model)).get(key, Any)
    except Exception:  # unresolvable annotations: accept values as given
        return value
    try:
        return pydantic.TypeAdapter(annotation).validate_python(value)
    except pydantic.ValidationError as exc:
        raise UserError(f"{where}: {value!r} is not a valid value ({exc.errors()[0]['msg']})") from None
