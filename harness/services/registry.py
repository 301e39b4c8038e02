"""Loading plugins and collecting their entries into one registry per kind.

Order: the core's own metrics, every entry point in the group `harness` (the built-ins
come this way, exactly as a third-party package does), then modules named by `--plugin`
or `plugins = [...]`, or plugin objects handed to `load`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
from dataclasses import dataclass
from typing import Any, Iterable

import pluggy

from harness.sdk import hookspecs, metrics
from harness.sdk.api import ENTRY_KINDS, Choice, Entry, Metric, Model, Range
from harness.services.errors import UserError

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
        self.metrics: dict[str, tuple[Metric, str]] = {}  # name -> (metric, plugin)
        self.executors: dict[str, tuple[Any, str]] = {}  # name -> (ExecutorEntry, plugin)

    def add_executor(self, entry: Any, plugin: str) -> None:
        """An executor a plugin offers (`harness.execute.executors` adds the built-ins at lookup)."""
        name = getattr(entry, "name", "")
        if not (name and isinstance(name, str) and callable(getattr(entry, "build", None))):
            raise UserError(
                f"plugin {plugin!r} returned {entry!r} from harness_executors(); expected an "
                "ExecutorEntry(name, build): fix the plugin"
            )
        if name in self.executors:
            raise UserError(
                f"duplicate executor {name!r}: registered by {self.executors[name][1]!r} and by "
                f"{plugin!r}; rename one of them"
            )
        self.executors[name] = (entry, plugin)

    def add_metric(self, metric: Any, plugin: str) -> None:
        if not (isinstance(metric, Metric) and metric.name and callable(metric.compute)):
            raise UserError(
                f"plugin {plugin!r} returned {metric!r} from harness_metrics(); "
                "expected harness.Metric(name, compute, higher_is_better): fix the plugin"
            )
        if metric.name in self.metrics:
            first = self.metrics[metric.name][1]
            raise UserError(
                f"duplicate metric {metric.name!r}: registered by {first!r} and by {plugin!r}; rename one of them"
            )
        self.metrics[metric.name] = (metric, plugin)
        metrics.remember(metric)

    def metric(self, name: str, where: str = "") -> Metric:
        try:
            return self.metrics[name][0]
        except KeyError:
            choices = ", ".join(sorted(self.metrics)) or "none registered"
            raise UserError(f"{where}unknown metric {name!r}; choose one of: {choices}") from None

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
        if "/" in name or name != name.strip():
            raise UserError(
                f"plugin {plugin!r}: {kind} name {name!r} of {cls.__name__} contains "
                f"{'a /' if '/' in name else 'leading or trailing spaces'}, which combination ids "
                "(task/representation/perturbation/model) and --only patterns cannot hold: rename it"
            )
        if kind == "model":
            _check_search_space(cls, plugin)
        if name in self.entries[kind]:
            first = self.entries[kind][name].plugin
            raise UserError(f"duplicate {kind} {name!r}: registered by {first!r} and by {plugin!r}; rename one of them")
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

    def default(self, kind: str, why: str) -> str:
        """The name of the entry of `kind` that declares itself the default."""
        names = [n for n, r in self.entries[kind].items() if r.cls.default]
        if len(names) == 1:
            return names[0]
        if not names:
            raise UserError(
                f"{why}, and no plugin offers a default {kind}; name one "
                f"({', '.join(self.names(kind)) or 'none registered'})"
            )
        raise UserError(
            f"{why}, and several {kind}s declare themselves the default ({', '.join(sorted(names))}); name one"
        )


def _check_search_space(cls: type[Model], plugin: str) -> None:
    valid = cls.hyperparameters()
    for key, dim in cls.search_space.items():
        if key not in valid:
            raise UserError(
                f"plugin {plugin!r}: model {cls.name!r} searches {key!r}, which is not one of its "
                f"fields ({', '.join(valid) or 'none'}): declare it as a field"
            )
        if not isinstance(dim, (Choice, Range)):
            raise UserError(
                f"plugin {plugin!r}: model {cls.name!r} search_space[{key!r}] = {dim!r}; "
                "use harness.Choice(...) or harness.Range(low, high)"
            )


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
            if fields[key].metadata.get("secret"):
                raise ValueError(f"parameter {key!r} (secret, not shown): {msg}") from None
            raise ValueError(f"parameter {key!r} = {value!r}: {msg} (default {fields[key].default!r})") from None
    return out


def _resolved_annotations(cls: type) -> dict[str, Any]:
    import typing

    try:
        return typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: accept values as given
        return {}


_LOADED: list[Registry] = []  # the registry `load` built last in this process


def create_entry(kind: str, name: str, params: dict[str, Any] | None = None, where: str = "") -> Entry:
    """An entry of the registry this run loaded (its --plugin modules too), for entries
    built from others (the `concat` representation); the installed plugins when none is."""
    return (_LOADED[-1] if _LOADED else load()).create(kind, name, params, where)


def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


def load(plugins: Iterable[str | object] = (), *, entry_points: bool = True) -> Registry:
    """Load every plugin and build the registry.

    `plugins`: module names (`--plugin`, `plugins = [...]`) or plugin objects (a module, or
    any object with `@hookimpl` methods), as tests register mock plugins.
    `entry_points=False` leaves out the installed packages, the built-ins included."""
    pm = plugin_manager()
    pm.register(metrics, name="harness")
    if entry_points:
        for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
            try:
                module = ep.load()
            except Exception as exc:
                raise UserError(
                    f"plugin entry point {ep.name!r} ({ep.value}) failed to import: "
                    f"{type(exc).__name__}: {exc}; fix or uninstall "
                    f"{ep.dist.name if ep.dist else 'the package that declares it'}"
                ) from None
            if pm.is_registered(module):
                continue
            pm.register(module, name=f"{ep.dist.name if ep.dist else '?'}:{ep.name}")
    for plugin in plugins:
        if isinstance(plugin, str):
            name = plugin
            try:
                plugin = importlib.import_module(name)
            except ImportError as exc:
                raise UserError(
                    f"plugin module {name!r} cannot be imported ({exc}); check the name and that it is on PYTHONPATH"
                ) from None
            except Exception as exc:  # the plugin's own code failed: name it, not a traceback
                raise UserError(
                    f"plugin module {name!r} failed to import: {type(exc).__name__}: {exc}; "
                    "fix the plugin or leave it out of `plugins`/--plugin"
                ) from None
        else:
            name = getattr(plugin, "__name__", None) or type(plugin).__name__
        if not pm.is_registered(plugin):
            pm.register(plugin, name=name)
    try:
        pm.check_pending()  # a misspelt hook name fails here, naming the plugin
    except pluggy.PluginValidationError as exc:
        raise UserError(f"plugin error: {exc}") from None
    registry = Registry()
    for impl in pm.hook.harness_metrics.get_hookimpls():  # registration order
        for metric in impl.function() or []:
            registry.add_metric(metric, impl.plugin_name)
    for impl in pm.hook.harness_executors.get_hookimpls():
        for entry in impl.function() or []:
            registry.add_executor(entry, impl.plugin_name)
    for kind, hook_name in HOOKS.items():
        hook = getattr(pm.hook, hook_name)
        for impl in hook.get_hookimpls():  # registration order
            for cls in impl.function() or []:
                registry.add(kind, cls, impl.plugin_name)
    _LOADED[:] = [registry]
    return registry
