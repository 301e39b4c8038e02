"""harness: benchmark structure-only crystal property classifiers, extended by plugins.

This module is the whole public API: a plugin imports `harness` and nothing under it
(`harness.torch`, the optional torch base, is the one public submodule). Every other
module of the package is the core's own and may change without notice.

Users run benchmarks and read results from Python with `harness.run`,
`harness.open_results` and the `Results` tables they return (`harness.user`).
"""

import pluggy

from harness.sdk.api import (
    CLOUD,
    VECTOR,
    Choice,
    Dataset,
    FitContext,
    LoadContext,
    Material,
    Metric,
    Model,
    Perturbation,
    Range,
    Representation,
    Samples,
    Skip,
    Task,
    iter_chunks,
    secret,
)
from harness.services.cache import read_arrays, read_json, write_arrays, write_json
from harness.plan.codeid import code_identity
from harness.services.errors import UserError
from harness.services.content import content_hash, site_label, structure_hash
from harness.prepare.grouping import CRYSTAL_SYSTEMS, SYMPREC, crystal_system, spacegroup_number, symmetry_dataset
from harness.services.paths import cache_dir
from harness.services.workers import worker_pool
from harness.prepare.symmetry import (
    ANGLE_TOLERANCE,
    Symmetry,
    analyse_symmetry,
    check_structure,
    structure_problem,
    symmetry_of,
)
from harness.user import FittedModel, Results, open_results, run
from harness.services.registry import create_entry

from harness.services.version import __version__

hookimpl = pluggy.HookimplMarker("harness")

__all__ = [
    # for users: run a benchmark, read its results as DataFrames, apply its models
    "run",
    "open_results",
    "Results",
    "FittedModel",
    # the five kinds of entry, and metrics
    "Dataset",
    "Task",
    "Representation",
    "Perturbation",
    "Model",
    "Metric",
    "hookimpl",
    # the data they exchange
    "CLOUD",
    "VECTOR",
    "Material",
    "Samples",
    "FitContext",
    "LoadContext",
    "Choice",
    "Range",
    "secret",
    # errors: Skip for one bad material, UserError for a mistake the user can fix
    "Skip",
    "UserError",
    # services lent to plugins
    "cache_dir",
    "worker_pool",
    "read_arrays",
    "write_arrays",
    "read_json",
    "write_json",
    "structure_hash",
    "content_hash",
    "site_label",
    "iter_chunks",
    "code_identity",
    "create_entry",
    # symmetry helpers (spglib), shared so that tasks and datasets label alike
    "SYMPREC",
    "CRYSTAL_SYSTEMS",
    "symmetry_dataset",
    "spacegroup_number",
    "crystal_system",
    # the shared symmetry analysis (one spglib search per crystal and symprec) and the
    # gate that keeps unusable structures (NaN, singular cells) away from C code
    "ANGLE_TOLERANCE",
    "Symmetry",
    "symmetry_of",
    "analyse_symmetry",
    "check_structure",
    "structure_problem",
    "__version__",
]
