"""The hooks a plugin may implement: one per kind of entry, each returning entry classes.

A plugin module (or package) implements any of them with `@harness.hookimpl`:

    from harness import hookimpl

    @hookimpl
    def harness_representations():
        return [MyRepresentation]
"""

from __future__ import annotations

import pluggy

PROJECT = "harness"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def harness_datasets() -> list[type]:
    """Dataset classes (subclasses of `harness.Dataset`)."""


@hookspec
def harness_tasks() -> list[type]:
    """Task classes (subclasses of `harness.Task`)."""


@hookspec
def harness_representations() -> list[type]:
    """Representation classes (subclasses of `harness.Representation`)."""


@hookspec
def harness_perturbations() -> list[type]:
    """Perturbation classes (subclasses of `harness.Perturbation`)."""


@hookspec
def harness_models() -> list[type]:
    """Model classes (subclasses of `harness.Model`)."""


@hookspec
def harness_metrics() -> list:
    """Metrics (`harness.Metric` instances) that tasks may name."""


@hookspec
def harness_executors() -> list:
    """Executors (`harness.execute.executors.ExecutorEntry`: a name and `build(run, settings)`)
    that `[run] executor` may name, beside the built-in local and ray."""
