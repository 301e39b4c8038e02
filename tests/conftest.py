import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before any OpenMP library loads

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))  # tests/toy_plugin.py is importable as `toy_plugin`

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory):
    """The test session keeps its caches in a private folder, never the user's."""
    old = os.environ.get("HARNESS_CACHE_DIR")
    os.environ["HARNESS_CACHE_DIR"] = str(tmp_path_factory.mktemp("harness-cache"))
    yield
    if old is None:
        os.environ.pop("HARNESS_CACHE_DIR", None)
    else:
        os.environ["HARNESS_CACHE_DIR"] = old


MP20 = SHARED_DATA / "mp20_subset_ehull_2485.csv.gz"


def prepared_mp20_stability(tmp_path: Path, **dataset):
    """The stability task on the shared MP20 file (barcode n = 3, splits grouped by formula
    and space group; `dataset` adds [dataset] settings), prepared as a run prepares it:
    its one grid part (studies with their inputs) and the materials loaded."""
    from rich.console import Console

    from harness.services import config, registry
    from dataclasses import replace

    from harness.plan.plan import make_plan
    from harness.prepare.prepare import prepare
    from harness.services.store import Store

    conf = config.parse(
        {
            "dataset": {"name": "file", "path": str(MP20), **dataset},
            "tasks": ["stability"],
            "representations": [{"name": "barcode", "n": 3}],
            "models": ["random_forest"],
            "run": {"split": {"group_by": "formula_spacegroup"}, "workers": 1},
        }
    )
    console = Console(quiet=True)
    plan = make_plan(conf, registry.load(), Store(f"sqlite:///{tmp_path}/r.sqlite"), console)
    (part,) = plan.parts
    made = prepare(conf, part, part.studies, console)
    return replace(part, studies=made.studies), made.loaded[part.spec.label].materials
