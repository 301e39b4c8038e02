"""How fast the `file` dataset reads a real file, cold and warm, against references
measured in the same run on the same file.

Rows:
- read table: the layout reader (pandas, every cell as text, typed per column) against
  Python's csv module reading the same rows (the reader this project used before);
- cold load: read + parse + cache write, against parsing alone (so the row says what the
  reading and the cache cost on top of the parse);
- warm load: the cached arrays and JSON back to lazy materials, against the cold load;
- cache: the cache file's size against the gzipped input.

    python perf/file_load.py                          # mp_metallicity_36k.csv.gz
    python perf/file_load.py --data ../shared/data/mp20_subset_ehull_2485.csv.gz
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import sys
import tempfile
import time
from pathlib import Path

import pandas  # noqa: F401 - imported before timing: the rows compare readers, not imports
from harness.sdk.api import LoadContext
from harness_plugins.datasets.files import FileDataset, parse
from harness_plugins.datasets.files.sources import detect_format
from harness_plugins.datasets.files.rows import to_rows
from harness_plugins.datasets.files.tabular import read_table

DEFAULT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mp_metallicity_36k.csv.gz"


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def stdlib_rows(path: Path) -> int:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with gzip.open(path, "rt", newline="") if path.suffix == ".gz" else open(path, newline="") as handle:
        return sum(1 for _ in csv.reader(io.StringIO(handle.read()))) - 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT)
    args = ap.parse_args()
    path = args.data.resolve()
    fmt = detect_format(path, "auto")
    t_ref, n_ref = timed(lambda: stdlib_rows(path))
    t_read, table = timed(lambda: read_table(path, fmt))
    assert len(table.records) == n_ref
    rows, _ = to_rows(table, "", "")
    with tempfile.TemporaryDirectory() as tmp:
        t_parse, _ = timed(lambda: parse.parse_rows(rows, LoadContext(Path(tmp) / "p"), "parse"))
        t_cold, cold = timed(lambda: FileDataset(path=str(path)).load(LoadContext(Path(tmp) / "c")))
        t_warm, warm = timed(lambda: FileDataset(path=str(path)).load(LoadContext(Path(tmp) / "c")))
        (cache,) = (Path(tmp) / "c").rglob("*.npz")
        size = cache.stat().st_size
    assert [m.id for m in warm] == [m.id for m in cold]
    mb = path.stat().st_size / 1e6
    print(f"{path.name}: {len(cold)} materials")
    print(f"read table   {t_read:6.2f} s   csv module {t_ref:6.2f} s   ratio {t_read / t_ref:5.2f}")
    print(f"cold load    {t_cold:6.2f} s   parse alone {t_parse:6.2f} s   ratio {t_cold / t_parse:5.2f}")
    print(f"warm load    {t_warm:6.2f} s   cold load  {t_cold:6.2f} s   ratio {t_warm / t_cold:5.3f}")
    print(f"cache        {size / 1e6:6.1f} MB  input      {mb:6.1f} MB  ratio {size / 1e6 / mb:5.2f}")


if __name__ == "__main__":
    main()
