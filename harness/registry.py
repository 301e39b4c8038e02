"""Loading plugins and collecting their entries into one registry per kind.

Order: every entry point in the group `harness` (the built-ins come this way, exactly as a
third-party package does), then modules named by `--plugin` or `plugins = [...]`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any, Iterable

import pluggy

from harness import hookspecs
from harness.api import ENTRY_KINDS, Entry
from harness.errors import UserError

HOOKS = {
    "dataset": "harness_datasets",
    "task": "harness_tasks",
    "representation": "harness_representations",
    "perturbation": "harness_perturbations",
    "model": "harness_models",
}


@dataclass(frozen=True)
class Registered:
    cls: type[Entry]
    plugin: str  # where it came from, for messages and `harness list`


class Registry:
    """All entries of all kinds, by kind and name."""

    def __init__(self) -> None:
        self.entries: dict[str, dict[str, Registered]] = {kind: {} for kind in HOOKS}

    def add(self, kind: str, cls: Any, plugin: str) -> None:
        base = ENTRY_KINDS[kind]
        if not (isinstance(cls, type) and issubclass(cls, base) and dataclasses.is_dataclass(cls)):
            raise UserError(
                f"plugin {plugin!r} returned {cls!r} from {HOOKS[kind]}(); expected a @dataclass "
                f"subclass of harness.{base.__name__}: fix the plugin"
            )
        name = getattr(cls, "name", "")
        if not name or not isinstance(name, str):
            raise UserError(f"plugin {plugin!r}: {cls.__name__} has no `name`: give it a unique name")
        if name in self.entries[kind]:
            first = self.entries[kind][name].plugin
            raise UserError(
                f"duplicate {kind} {name!r}: registered by {first!r} and by {plugin!r}; rename one of them"
            )
        self.entries[kind][name] = Registered(cls, plugin)

    def get(self, kind: str, name: str) -> Registered:
        try:
            return self.entries[kind][name]
        except KeyError:
            choices = ", ".join(sorted(self.entries[kind])) or "none registered"
            raise UserError(f"unknown {kind} {name!r}; choose one of: {choices}") from None

    def create(self, kind: str, name: str, params: dict[str, Any] | None = None, where: str = "") -> Entry:
        """Instantiate an entry from TOML parameters, with errors that name the key."""
        cls = self.get(kind, name).cls
        params = dict(params or {})
        known = {p.name: p for p in cls.parameters()}
        for key in params:
            if key not in known:
                valid = ", ".join(sorted(known)) or "none"
                raise UserError(f"{where}{kind} {name!r} has no parameter {key!r}; valid: {valid}")
        try:
            return cls(**_coerce(cls, params))
        except UserError:
            raise
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}{kind} {name!r}: {exc}") from None

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])


def _coerce(cls: type, params: dict[str, Any]) -> dict[str, Any]:
    """Validate parameter types with pydantic (TOML ints where floats are wanted, etc.)."""
    import pydantic

    fields = {f.name: f for f in dataclasses.fields(cls)}
    out = {}
    for key, value in params.items():
        annotation = _resolved_annotations(cls).get(key, Any)
        try:
            out[key] = pydantic.TypeAdapter(annotation).validate_python(value)
        except pydantic.ValidationError as exc:
            msg = exc.errors()[0]["msg"]
            raise ValueError(f"parameter {key!r} = {value!r}: {msg} (default {fields[key].default!r})") from None
    return out


def _resolved_annotations(cls: type) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: accept values as given
        return {}


def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def load(extra_modules: Iterable[str] = ()) -> Registry:
    """Load every plugin and build the registry."""
    pm = plugin_manager()
    for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
        try:
            module = ep.load()
        except Exception as exc:
            raise UserError(f"plugin entry point {ep.name!r} ({ep.value}) failed to import: {exc}") from None
        if pm.is_registered(module):
            continue
        pm.register(module, name=f"{ep.dist.name if ep.dist else '?'}:{ep.name}")
    for name in extra_modules:
        try:
            module = importlib.import_module(name)
        except ImportError as exc:
            raise UserError(
                f"plugin module {name!r} cannot be imported ({exc}); check the name and that it is on PYTHONPATH"
            ) from None
        if not pm.is_registered(module):
            pm.register(module, name=name)
    try:
        pm.check_pending()  # a misspelt hook name fails here, naming the plugin
    except pluggy.PluginValidationError as exc:
        raise UserError(f"plugin error: {exc}") from None
    registry = Registry()
    for kind, hook_name in HOOKS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in reversed(hook.get_hookimpls()):  # registration order
            for cls in impl.function() or []:
                registry.add(kind, cls, impl.plugin_name)
    return registry
