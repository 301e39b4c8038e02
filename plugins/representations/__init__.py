"""Built-in representations."""

from harness import hookimpl


@hookimpl
def harness_representations():
    return []
