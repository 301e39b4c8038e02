"""harness: benchmark structure-only crystal property classifiers, extended by plugins."""

import pluggy

from harness.api import (
    CLOUD,
    VECTOR,
    Dataset,
    FitContext,
    LoadContext,
    Material,
    Model,
    Perturbation,
    Representation,
    Samples,
    Skip,
    Task,
)

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("harness")

__all__ = [
    "CLOUD",
    "VECTOR",
    "Dataset",
    "FitContext",
    "LoadContext",
    "Material",
    "Model",
    "Perturbation",
    "Representation",
    "Samples",
    "Skip",
    "Task",
    "hookimpl",
    "__version__",
]
