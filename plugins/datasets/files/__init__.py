"""The `file` dataset: crystals read as they are from users' files.

One module per layout, each returning a `Table`:
- `tabular`: CSV, TSV (optionally gzipped) and Parquet with a CIF or POSCAR column;
- `jsonfile`: JSON (optionally gzipped): a list of records, `{id: record}`, pandas'
  orients `columns`, `index`, `split` (matbench), `records`, `table`; structures as CIF
  text or pymatgen Structure dicts;
- `folder`: a folder of CIF/POSCAR files with CGCNN's `id_prop.csv` (with or without a
  header) or a properties table named by `properties`;
- `xyz`: extended XYZ through ASE.
`rows` turns a Table into rows (which column holds structures, which ids), `parse`
parses them (in two processes when there are many), `compact` caches the result,
`values` reads typed and nested values (`columns = { k = "column.key" }`), `messages`
formats lists and hints.
"""

from .compact import compact_structure, pack, read_cache, unpack, write_atomic, write_cache
from .dataset import SOURCE_FILE, FileDataset
from .messages import capped, no_label_message
from .parse import parse_chunk, parse_rows, parse_structure, warnings_summary

__all__ = [
    "FileDataset",
    "SOURCE_FILE",
    "capped",
    "no_label_message",
    "compact_structure",
    "pack",
    "unpack",
    "read_cache",
    "write_cache",
    "write_atomic",
    "parse_rows",
    "parse_chunk",
    "parse_structure",
    "warnings_summary",
]
