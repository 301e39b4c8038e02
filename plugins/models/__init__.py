"""Built-in models."""

from harness import hookimpl


@hookimpl
def harness_models():
    return []
