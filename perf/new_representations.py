"""Featurisation speed and memory of density_cloud, density_grid, powder_pattern and
composition, as ratios to xrd_cloud (n = 125, conventional cell) on the same crystals in
the same run. Standard cells are computed once up front (all share the cell cache), so
the rows compare the representations' own work.

    python perf/new_representations.py --limit 1000
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mp_metallicity_36k.csv.gz"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--chunk", type=int, default=256)
    args = parser.parse_args()
    os.environ.setdefault("HARNESS_CACHE_DIR", tempfile.mkdtemp(prefix="perf-newreps-"))

    from harness.sdk.api import LoadContext, iter_chunks
    from harness.services.paths import cache_dir
    from harness_plugins.datasets.files import FileDataset
    from harness_plugins.representations import cells
    from harness_plugins.representations.composition import Composition
    from harness_plugins.representations.density import DensityCloud, DensityGrid
    from harness_plugins.representations.diffraction import XrdCloud
    from harness_plugins.representations.powder import PowderPattern

    materials = FileDataset(path=args.data, limit=args.limit).load(LoadContext(cache_dir()))
    structures = [m.structure for m in materials]
    t0 = time.perf_counter()
    for chunk in iter_chunks(structures, args.chunk):
        cells.cached_standard_cells(chunk, "conventional", 0.1)
    print(
        f"{len(structures)} crystals; conventional standard cells in {time.perf_counter() - t0:.1f} s (shared by all rows)"
    )

    rows = [
        ("xrd_cloud(n=125) [reference]", XrdCloud(n=125, cell="conventional")),
        ("density_cloud(grid, 216)", DensityCloud(n_points=216)),
        ("density_cloud(grid, 4096)", DensityCloud(n_points=4096)),
        ("density_cloud(random, 216)", DensityCloud(n_points=216, sampling="random")),
        ("density_cloud(weighted, 216)", DensityCloud(n_points=216, sampling="density_weighted")),
        ("density_grid(16)", DensityGrid(grid=16)),
        ("powder_pattern", PowderPattern()),
        ("composition", Composition()),
    ]
    reference = None
    print(
        f"{'representation':32s} {'crystals/s':>11s} {'x reference':>12s} {'skipped':>8s} {'max RSS so far, MB':>19s}"
    )
    for label, rep in rows:
        t0 = time.perf_counter()
        skipped = 0
        for chunk in iter_chunks(structures, args.chunk):
            skipped += sum(not hasattr(x, "shape") for x in rep.featurize_many(chunk))
        rate = len(structures) / (time.perf_counter() - t0)
        reference = reference or rate
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{label:32s} {rate:11.1f} {rate / reference:12.2f} {skipped:8d} {peak:19.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
