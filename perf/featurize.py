"""Featurisation speed and memory of the diffraction representations on real crystals.

Measures, in one run on the same crystals: CIF parsing (context), standardisation
(pymatgen reference vs the fast path), structure factors (the
per-reflection reference loop vs the batched kernel), `featurize_many` throughput on one
process and on a pool like the core's, agreement of the fast path with the reference, and
peak RSS. See perf/README.md.

    python perf/featurize.py --limit 2000
    python perf/featurize.py --limit 0          # all 36,738 crystals
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import os
import tempfile
import resource
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from harness import Skip
from harness_plugins.representations import cells, scattering
from harness_plugins.representations.diffraction import XrdCloud

DEFAULT_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mp_metallicity_36k.csv.gz"
FULL_SIZE = 36_738


def read_cifs(path: Path, limit: int) -> list[str]:
    with gzip.open(path, "rt") as fh:
        reader = csv.DictReader(io.StringIO(fh.read()))
        out = []
        for row in reader:
            out.append(row["cif"])
            if limit and len(out) >= limit:
                break
    return out


def parse(cifs: list[str]):
    from pymatgen.core import Structure

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [Structure.from_str(c, fmt="cif") for c in cifs]


def timed(fn, *args):
    start = time.perf_counter()
    result = fn(*args)
    return result, time.perf_counter() - start


def chunks(items, size):
    return [items[i : i + size] for i in range(0, len(items), size)]


def pool_featurize(rep, structures, chunk: int, workers: int) -> list:
    """Chunks to a process pool with at most 2 chunks per worker in flight, so the main
    process never holds every pickled chunk at once."""
    from concurrent.futures import FIRST_COMPLETED, wait

    parts = chunks(structures, chunk)
    results: dict[int, list] = {}
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(abs, range(workers)))  # start the workers before timing
        start = time.perf_counter()
        pending = {}
        for i, part in enumerate(parts):
            if len(pending) >= 2 * workers:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    results[pending.pop(fut)] = fut.result()
            pending[pool.submit(rep.featurize_many, part)] = i
        for fut in pending:
            results[pending[fut]] = fut.result()
        elapsed = time.perf_counter() - start
    return [x for i in range(len(parts)) for x in results[i]], elapsed


def peak_rss_mb() -> tuple[float, float]:
    self_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return self_kb / 1024, children_kb / 1024


def fresh_cache() -> None:
    """An empty cache folder, so a timing never reads what an earlier row computed."""
    os.environ["HARNESS_CACHE_DIR"] = tempfile.mkdtemp(prefix="harness-perf-")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="CSV(.gz) with a `cif` column")
    ap.add_argument("--limit", type=int, default=2000, help="crystals to use (0 = all)")
    ap.add_argument("--reference-limit", type=int, default=200, help="crystals for the slow reference timings")
    ap.add_argument("--n", type=int, default=343, help="Miller set size")
    ap.add_argument("--cell", default="primitive", choices=["primitive", "conventional"])
    ap.add_argument("--chunk", type=int, default=256, help="structures per featurize_many call")
    ap.add_argument("--workers", type=int, default=2, help="processes for the pool run (0 = skip)")

    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")  # pymatgen CIF chatter; the table is the output
    console = Console(width=160)
    if not args.data.is_file():
        console.print(f"[red]data not found: {args.data}[/red] (pass --data)")
        return 2

    cifs = read_cifs(args.data, args.limit)
    structures, t_parse = timed(parse, cifs)
    n_all = len(structures)
    ref_set = structures[: min(args.reference_limit, n_all)]
    n_ref = len(ref_set)
    table = Table(title=f"xrd_cloud n={args.n} {args.cell}: {n_all} crystals ({n_ref} for reference timings)")
    for col in ("stage", "measure", "value", "note"):
        table.add_column(col)
    table.add_row("parse", "CIF -> Structure", f"{t_parse / n_all * 1e3:.2f} ms/crystal", "pymatgen, for context")

    # -- standardisation -----------------------------------------------------------
    _, t_std_ref = timed(lambda: [cells.reference_standard_structure(s, args.cell, 0.1) for s in ref_set])
    _, t_std_spg = timed(lambda: [cells.fast_standard_cell(s, args.cell, 0.1) for s in ref_set])
    table.add_row("standardise", "reference (SpacegroupAnalyzer)", f"{t_std_ref / n_ref * 1e3:.2f} ms/crystal", "")
    table.add_row(
        "standardise",
        "fast (one spglib search + arrays)",
        f"{t_std_spg / n_ref * 1e3:.2f} ms/crystal",
        f"{t_std_ref / t_std_spg:.1f}x faster than reference",
    )

    # -- structure factors on the same standard cells ------------------------------
    hkl = scattering.miller_indices(args.n)
    std_structures = [cells.reference_standard_structure(s, args.cell, 0.1) for s in ref_set]
    std_cells = [cells.cell_from_structure(s) for s in std_structures]
    _, t_loop = timed(lambda: [scattering.reference_pattern(s, hkl, "xray", 1.5418, True) for s in std_structures])
    _, t_kernel = timed(
        lambda: [scattering.batch_patterns(c, hkl, "xray", 1.5418, True) for c in chunks(std_cells, args.chunk)]
    )
    table.add_row("structure factors", "reference per-hkl loop", f"{t_loop / n_ref * 1e3:.3f} ms/crystal", "")
    table.add_row(
        "structure factors",
        "fast batched kernel",
        f"{t_kernel / n_ref * 1e3:.3f} ms/crystal",
        f"[bold]{t_loop / t_kernel:.0f}x[/bold] faster than the loop (same crystals, same run)",
    )

    # -- agreement with the reference ----------------------------------------------
    rep = XrdCloud(n=args.n, cell=args.cell)
    worst, off = 0.0, 0
    for s, p in zip(ref_set, rep.patterns(ref_set)):
        ref = rep.reference_pattern(s)
        err = float(np.abs(p.intensity - ref.intensity).max() / ref.intensity.max())
        worst = max(worst, err)
        off += err > 1e-6
    table.add_row(
        "agreement",
        "fast path vs reference",
        f"{n_ref - off}/{n_ref} within 1e-6",
        f"worst deviation {worst:.1e} of the crystal's strongest intensity",
    )

    # -- throughput ------------------------------------------------------------------
    fresh_cache()  # cold: no standard cell cached yet
    results, t_one = timed(lambda: [x for c in chunks(structures, args.chunk) for x in rep.featurize_many(c)])
    skipped = sum(isinstance(x, Skip) for x in results)
    rate = n_all / t_one
    table.add_row(
        "featurize_many",
        "1 process",
        f"{rate:.0f} crystals/s",
        f"{skipped} skipped; {FULL_SIZE:,} on 2 cores ~ {FULL_SIZE / rate / 2:.0f} s (ideal scaling)",
    )
    del results
    from harness_plugins.representations.diffraction import NdCloud

    second = NdCloud(n=args.n, cell=args.cell)  # another representation, same crystals
    results, t_second = timed(lambda: [x for c in chunks(structures, args.chunk) for x in second.featurize_many(c)])
    rate = n_all / t_second
    table.add_row(
        "featurize_many",
        "second representation, 1 process",
        f"{rate:.0f} crystals/s",
        f"nd_cloud with the standard cells cached; {FULL_SIZE:,} on 2 cores ~ {FULL_SIZE / rate / 2:.0f} s",
    )
    del results
    if args.workers:
        fresh_cache()
        out, t_pool = pool_featurize(rep, structures, args.chunk, args.workers)
        rate = len(out) / t_pool
        table.add_row(
            "featurize_many",
            f"pool of {args.workers}",
            f"{rate:.0f} crystals/s",
            f"{n_all} in {t_pool:.1f} s; {FULL_SIZE:,} ~ {FULL_SIZE / rate:.0f} s (structures pickled to workers)",
        )
        del out
    rss_self, rss_children = peak_rss_mb()
    table.add_row("memory", "peak RSS", f"{rss_self:.0f} MB main", f"{rss_children:.0f} MB largest worker")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
