"""Built-in perturbations."""

from harness import hookimpl


@hookimpl
def harness_perturbations():
    return []
