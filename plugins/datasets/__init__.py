"""Built-in datasets. Add an entry by importing its class and listing it below."""

from harness import hookimpl

from .demo import Demo
from .files import FileDataset
from .mp import MPDataset


@hookimpl
def harness_datasets():
    return [Demo, FileDataset, MPDataset]
