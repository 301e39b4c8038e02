"""Built-in tasks."""

from harness import hookimpl


@hookimpl
def harness_tasks():
    return []
