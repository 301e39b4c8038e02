"""The first N rows of a (gzipped) CSV of crystals, as a file: what `limit = N` meant before
`limit` drew a seeded sample, and a fixed subset for benchmarks.

    python perf/first_rows.py ../shared/data/mp_metallicity_36k.csv.gz 5000 ../results/mp_metallicity_first5000.csv
"""

from __future__ import annotations

import csv
import gzip
import sys
from pathlib import Path


def first_rows(source: Path, n: int, out: Path) -> Path:
    csv.field_size_limit(1 << 30)
    opener = gzip.open if source.suffix == ".gz" else open
    with opener(source, "rt", newline="") as f, open(out, "w", newline="") as g:
        reader, writer = csv.reader(f), csv.writer(g)
        writer.writerow(next(reader))
        for i, row in enumerate(reader):
            if i >= n:
                break
            writer.writerow(row)
    return out


if __name__ == "__main__":
    source, n, out = sys.argv[1:4]
    print(first_rows(Path(source), int(n), Path(out)))
