"""Built-in datasets."""

from harness import hookimpl


@hookimpl
def harness_datasets():
    return []
