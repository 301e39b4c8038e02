"""The `file` dataset: crystals read as they are from a CSV, a JSON or a folder of CIFs.

Layouts read without conversion:
- CSV (optionally gzipped) with one CIF string per row (CDVAE/mp_20, MT-CGCNN);
- JSON (optionally gzipped): a list of records whose structure is a pymatgen
  `Structure.as_dict()` (matbench/matcalc), pandas' split layout
  `{"columns", "index", "data"}` (matbench), or `{id: record}`;
- a folder of `<id>.cif` files with a header-less `id_prop.csv` (CGCNN): `id, value`,
  the value becomes the property `target`.

Parsing CIFs costs milliseconds per crystal, so a cold load parses in two processes and
stores the result in a compact cache (lattices, fractional coordinates, species, props)
keyed by the file's content hash, the parameters that change parsing and `CODE_VERSION`;
a warm load only rebuilds the `Structure` objects.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import itertools
import json
import logging
import math
import os
import pickle
import re
import sys
import tempfile
import warnings
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Iterator, Sequence

import numpy as np

from harness import Dataset, LoadContext, Material, UserError, iter_chunks

from .p1cif import read_p1_cif

log = logging.getLogger(__name__)

CODE_VERSION = "2"  # bump when parsing or the cache layout changes
FORMATS = ("auto", "csv", "json", "cif_folder")
ID_CANDIDATES = ("material_id", "mp_id", "id")
DEFAULT_STRUCTURE_COLUMN = {"csv": "cif", "json": "structure"}
ID_PROP_FILE = "id_prop.csv"
WORKERS = 2  # processes for a cold parse
PARALLEL_MIN_ROWS = 512  # fewer rows parse in-process: a pool would cost more than it saves
CHUNK_ROWS = 256

# One row before parsing: (material id, CIF text or Structure dict or None, props).
RawRow = tuple[str, Any, dict[str, Any]]


@dataclass
class FileDataset(Dataset):
    name: ClassVar[str] = "file"
    description: ClassVar[str] = (
        "Crystals from a file: CSV with a CIF column, (matbench) JSON(.gz), or CIF folder + id_prop.csv"
    )

    path: str = ""
    format: str = "auto"  # auto | csv | json | cif_folder
    id_column: str = ""  # empty: material_id, mp_id or id, whichever the file has
    structure_column: str = ""  # empty: "cif" (CSV) or "structure" (JSON)
    columns: dict[str, str] = field(default_factory=dict)  # property name -> the file's column
    limit: int | None = None  # first N rows only, for quick runs
    # Counts of (normalised) parser warnings of the last load: a summary, not one line each.
    parse_warnings: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UserError(f"[dataset] format = {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"[dataset] limit = {self.limit} must be a positive number of rows")

    def load(self, ctx: LoadContext) -> list[Material]:
        path = resolve_path(self.path)
        fmt = detect_format(path, self.format)
        key = self._cache_key(path, fmt)
        cache_file = Path(ctx.cache_dir) / "datasets" / "file" / f"{_safe_stem(path)}-{key[:20]}.pkl"
        cached = read_cache(cache_file)
        if cached is None:
            rows, skipped = read_rows(path, fmt, self.id_column, self.structure_column, self.limit)
            records, parse_skips, warned = parse_rows(rows, ctx, f"parsing {path.name}")
            cached = {"records": pack(records), "skipped": skipped + parse_skips, "warnings": warned}
            write_cache(cache_file, cached)
            level = logging.INFO
        else:
            log.debug("file: %s read from cache %s", path, cache_file)
            level = logging.DEBUG  # already reported when it was parsed
        for material_id, reason in cached["skipped"]:
            ctx.skip(material_id, reason)
        self.parse_warnings = dict(cached["warnings"])
        summary = warnings_summary(cached["warnings"], path.name)
        if summary:
            log.log(level, summary)
        self._check_columns(cached["records"]["props"], path)
        return unpack(cached["records"], self._alias)

    def _cache_key(self, path: Path, fmt: str) -> str:
        params = {
            "format": fmt,
            "id_column": self.id_column,
            "structure_column": self.structure_column,
            "limit": self.limit,
            "code": CODE_VERSION,
            "content": content_hash(path, fmt),
        }
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()

    def _check_columns(self, props: list[dict[str, Any]], path: Path) -> None:
        present = set().union(*props) if props else set()
        for prop, column in self.columns.items():
            if column not in present:
                raise UserError(
                    f"[dataset] columns maps {prop!r} to {column!r}, but {path} has no column {column!r}; "
                    f"its columns: {', '.join(sorted(present)) or 'none'}"
                )

    def _alias(self, props: dict[str, Any]) -> dict[str, Any]:
        """Add the `columns` aliases; every column also stays under its own name."""
        if not self.columns:
            return props
        return {**props, **{prop: props.get(column) for prop, column in self.columns.items()}}


# --------------------------------------------------------------------------- locating and hashing


def resolve_path(raw: str) -> Path:
    if not raw:
        raise UserError("[dataset] path is empty: set path = \"...\" to a CSV, JSON or CIF folder")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        path = Path.cwd() / path
    if not path.exists():
        raise UserError(
            f"cannot read {raw}: no such file or folder (looked in {path}); "
            "fix [dataset] path (relative paths start at the current directory)"
        )
    if not os.access(path, os.R_OK):
        raise UserError(f"cannot read {raw}: permission denied; make it readable or copy it elsewhere")
    return path


def detect_format(path: Path, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if path.is_dir():
        return "cif_folder"
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".gzip")]
    if suffixes and suffixes[-1] in (".csv", ".json"):
        return suffixes[-1][1:]
    raise UserError(
        f"cannot read {path}: cannot tell its format from the name; set [dataset] format to csv, json or cif_folder"
    )


def content_hash(path: Path, fmt: str) -> str:
    """sha256 of the bytes: one file, or a folder's id_prop.csv and every CIF in it."""
    digest = hashlib.sha256()
    try:
        if fmt == "cif_folder":
            for item in sorted(path.iterdir()):
                if item.name == ID_PROP_FILE or item.suffix.lower() == ".cif":
                    digest.update(item.name.encode() + b"\0")
                    digest.update(item.read_bytes())
        else:
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}; check the path and its permissions") from None
    return digest.hexdigest()


def _safe_stem(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.name)[:60]


def open_text(path: Path):
    """Open a text file, gunzipping it when its first bytes say so (whatever the suffix)."""
    with open(path, "rb") as handle:
        magic = handle.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


# --------------------------------------------------------------------------- reading rows


def read_rows(
    path: Path, fmt: str, id_column: str, structure_column: str, limit: int | None
) -> tuple[list[RawRow], list[tuple[str, str]]]:
    """The rows as (id, raw structure, props) before parsing, and the rows already left out."""
    try:
        if fmt == "csv":
            rows = _read_csv(path, id_column, structure_column or DEFAULT_STRUCTURE_COLUMN["csv"], limit)
        elif fmt == "json":
            rows = _read_json(path, id_column, structure_column or DEFAULT_STRUCTURE_COLUMN["json"], limit)
        else:
            rows = _read_cif_folder(path, limit)
    except (OSError, EOFError, UnicodeDecodeError, csv.Error, json.JSONDecodeError) as exc:
        cause = getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}"
        raise UserError(f"cannot read {path}: {cause}; check that it is a {fmt} file (set [dataset] format)") from None
    return _screen_rows(rows)


def _screen_rows(rows: list[RawRow]) -> tuple[list[RawRow], list[tuple[str, str]]]:
    """Leave out repeated ids (the first wins) and rows without a structure."""
    seen: set[str] = set()
    kept, skipped = [], []
    for row in rows:
        if row[0] in seen:
            skipped.append((row[0], "duplicate material id"))
            continue
        seen.add(row[0])
        if row[1] is None or row[1] == "":
            skipped.append((row[0], "no structure in the row"))
            continue
        kept.append(row)
    return kept, skipped


def _read_csv(path: Path, id_column: str, structure_column: str, limit: int | None) -> list[RawRow]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # CIFs of large cells exceed the default
    with open_text(path) as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            raise UserError(f"cannot read {path}: the file is empty; point [dataset] path at a CSV with a header")
        body = list(itertools.islice(reader, limit))
    header = [h.strip() for h in header]
    if structure_column not in header:
        raise UserError(
            f"cannot read {path}: no structure column {structure_column!r} (columns: {', '.join(header)}); "
            "set [dataset] structure_column to the column holding CIF strings"
        )
    id_name = _pick_id_column(header, id_column, path)
    s_index = header.index(structure_column)
    values = {
        name: _typed_column([row[i] if i < len(row) else "" for row in body])
        for i, name in enumerate(header)
        if i != s_index
    }
    id_index = header.index(id_name) if id_name else None
    rows = []
    for n, row in enumerate(body):
        props = {name: column[n] for name, column in values.items()}
        material_id = str(row[id_index]).strip() if id_index is not None else str(n)
        cif = row[s_index] if s_index < len(row) else None
        rows.append((material_id, cif, props))
    return rows


def _read_json(path: Path, id_column: str, structure_column: str, limit: int | None) -> list[RawRow]:
    with open_text(path) as handle:
        data = json.load(handle)
    index: list[Any] | None = None
    if isinstance(data, dict) and {"columns", "data"} <= set(data):  # pandas/matbench "split" layout
        names = list(data["columns"])
        records = [dict(zip(names, values)) for values in data["data"]]
        index = data.get("index")
    elif isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        index, records = list(data), list(data.values())
    elif isinstance(data, list) and all(isinstance(r, dict) for r in data):
        records = data
    else:
        raise UserError(
            f"cannot read {path}: unknown JSON layout; expected a list of records, "
            "{\"columns\", \"index\", \"data\"} (matbench) or {id: record}"
        )
    if limit:
        records = records[:limit]
    keys = list(dict.fromkeys(k for r in records for k in r))
    if records and structure_column not in keys:
        raise UserError(
            f"cannot read {path}: no structure key {structure_column!r} (keys: {', '.join(map(str, keys))}); "
            "set [dataset] structure_column to the key holding pymatgen Structure dicts"
        )
    id_name = _pick_id_column(keys, id_column, path)
    rows = []
    for n, record in enumerate(records):
        if id_name:
            material_id = str(record.get(id_name, n))
        else:
            material_id = str(index[n]) if index is not None and n < len(index) else str(n)
        props = {k: _typed_value(v) for k, v in record.items() if k != structure_column}
        rows.append((material_id, record.get(structure_column), props))
    return rows


def _read_cif_folder(path: Path, limit: int | None) -> list[RawRow]:
    id_prop = path / ID_PROP_FILE
    if not id_prop.is_file():
        raise UserError(
            f"cannot read {path}: no {ID_PROP_FILE} in the folder; add one (lines `id,value`, no header) "
            "or point [dataset] path at a CSV/JSON file"
        )
    with open_text(id_prop) as handle:
        lines = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    if limit:
        lines = lines[:limit]
    width = max((len(row) for row in lines), default=1)
    names = ["target" if i == 1 else f"target_{i}" for i in range(1, width)]
    columns = {
        name: _typed_column([row[i + 1] if i + 1 < len(row) else "" for row in lines]) for i, name in enumerate(names)
    }
    rows = []
    for n, row in enumerate(lines):
        material_id = row[0].strip()
        cif_file = path / f"{material_id}.cif"
        cif = cif_file.read_text(encoding="utf-8", errors="replace") if cif_file.is_file() else None
        rows.append((material_id, cif, {name: columns[name][n] for name in names}))
    return rows


def _pick_id_column(names: Sequence[str], wanted: str, path: Path) -> str | None:
    if wanted:
        if wanted not in names:
            raise UserError(
                f"cannot read {path}: no id column {wanted!r} (columns: {', '.join(map(str, names))}); "
                "fix [dataset] id_column or leave it empty to auto-detect"
            )
        return wanted
    for candidate in ID_CANDIDATES:
        if candidate in names:
            return candidate
    log.info("file: %s has none of the id columns %s; using the row number", path.name, ", ".join(ID_CANDIDATES))
    return None


_BOOLS = {"true": True, "false": False}


def _typed_column(cells: list[str]) -> list[Any]:
    """A CSV column as floats when every non-empty cell is a number, booleans when all are
    true/false, else strings; empty cells become None (not labelled)."""
    stripped = [c.strip() for c in cells]
    present = [c for c in stripped if c]
    if present and all(c.lower() in _BOOLS for c in present):
        return [_BOOLS[c.lower()] if c else None for c in stripped]
    try:
        numbers = [float(c) if c else None for c in stripped]
    except ValueError:
        return [c if c else None for c in stripped]
    return [None if x is None or math.isnan(x) else x for x in numbers]


def _typed_value(value: Any) -> Any:
    """JSON values: numbers become floats (NaN becomes None); booleans and the rest stay."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return None if isinstance(value, float) and math.isnan(value) else float(value)
    return value


# --------------------------------------------------------------------------- parsing


def parse_rows(
    rows: list[RawRow], ctx: LoadContext, description: str
) -> tuple[list[tuple[str, tuple, dict]], list[tuple[str, str]], Counter]:
    """Parse every row's structure (in `WORKERS` processes when there are many).

    Returns the compact records, the rows left out with their reason and the count of
    each (normalised) parser warning."""
    chunks = list(iter_chunks([(r[0], r[1]) for r in rows], CHUNK_ROWS))
    results: Iterable[tuple[list, Counter]]
    pool = None
    if len(rows) >= PARALLEL_MIN_ROWS and WORKERS > 1:
        pool = ProcessPoolExecutor(max_workers=min(WORKERS, os.cpu_count() or 1))
        results = pool.map(parse_chunk, chunks)
    else:
        results = map(parse_chunk, chunks)
    warned: Counter = Counter()

    def flatten() -> Iterator[tuple[str, Any, str | None]]:
        for parsed, chunk_warnings in results:
            warned.update(chunk_warnings)
            yield from parsed

    records, skipped = [], []
    try:
        parsed = ctx.progress(flatten(), total=len(rows), description=description)
        for (material_id, compact, error), row in zip(parsed, rows):
            if error is not None:
                skipped.append((material_id, error))
            else:
                records.append((material_id, compact, row[2]))
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return records, skipped, warned


def parse_chunk(items: Sequence[tuple[str, Any]]) -> tuple[list[tuple[str, Any, str | None]], Counter]:
    """Parse (id, raw) pairs into compact structures; runs in a worker process."""
    out: list[tuple[str, Any, str | None]] = []
    warned: Counter = Counter()
    for material_id, raw in items:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                compact = read_p1_cif(raw) if isinstance(raw, str) and not raw.lstrip().startswith("{") else None
                if compact is None:
                    structure = parse_structure(raw)
                    if len(structure) == 0:
                        raise ValueError("structure has no sites")
                    compact = compact_structure(structure)
                out.append((material_id, compact, None))
            except Exception as exc:  # one bad row never stops the load
                reason = f"unparseable structure ({type(exc).__name__}: {_normalise(str(exc))[:80]})"
                out.append((material_id, None, reason))
        for w in caught:
            warned[f"{w.category.__name__}: {_normalise(str(w.message))}"] += 1
    return out, warned


def parse_structure(raw: Any):
    """A pymatgen Structure from a CIF string or a `Structure.as_dict()` (or its JSON text)."""
    from pymatgen.core import Structure
    from pymatgen.io.cif import CifParser

    if isinstance(raw, dict):
        return Structure.from_dict(raw)
    if not isinstance(raw, str):
        raise TypeError(f"expected a CIF string or a Structure dict, got {type(raw).__name__}")
    text = raw.strip()
    if text.startswith("{"):
        return Structure.from_dict(json.loads(text))
    return CifParser.from_str(text).parse_structures(primitive=False)[0]


def _normalise(message: str) -> str:
    """First line with numbers replaced, so that like warnings count together."""
    first = message.strip().splitlines()[0] if message.strip() else ""
    return re.sub(r"\d+(\.\d+)?", "#", first)[:200]


def warnings_summary(warned: Counter | dict, source: str) -> str:
    """One line for the log instead of one warning per structure."""
    if not warned:
        return ""
    counts = Counter(warned)
    top = "; ".join(f"{message!r} x{n}" for message, n in counts.most_common(3))
    more = f" (+{len(counts) - 3} other kinds)" if len(counts) > 3 else ""
    return f"file: {sum(counts.values())} parser warnings while reading {source}: {top}{more}"


# --------------------------------------------------------------------------- compact form and cache


def compact_structure(structure) -> tuple[np.ndarray, np.ndarray, tuple]:
    """(lattice matrix, fractional coordinates, per-site ((species, occupancy), ...))."""
    species = tuple(tuple((str(sp), float(occ)) for sp, occ in site.species.items()) for site in structure)
    return (
        np.asarray(structure.lattice.matrix, dtype=np.float64),
        np.asarray(structure.frac_coords, dtype=np.float64),
        species,
    )


def pack(records: list[tuple[str, tuple, dict]]) -> dict[str, Any]:
    """Many compact structures as a few arrays: fast to pickle and to load."""
    table: dict[tuple, int] = {}
    site_species: list[int] = []
    lattices, coords, offsets = [], [], [0]
    for _, (matrix, frac, species), _ in records:
        lattices.append(matrix)
        coords.append(frac)
        offsets.append(offsets[-1] + len(frac))
        site_species.extend(table.setdefault(sp, len(table)) for sp in species)
    return {
        "ids": [r[0] for r in records],
        "props": [r[2] for r in records],
        "lattices": np.array(lattices, dtype=np.float64).reshape(-1, 3, 3),
        "coords": np.concatenate(coords) if coords else np.zeros((0, 3)),
        "offsets": np.asarray(offsets, dtype=np.int64),
        "species_table": list(table),
        "site_species": np.asarray(site_species, dtype=np.int32),
    }


def unpack(packed: dict[str, Any], props: Callable[[dict], dict] = dict) -> list[Material]:
    """Materials from `pack`'s arrays, with their content hashes. Structures are built
    on first use (`Material.lazy`): a warm run whose features are all cached needs none."""
    from pymatgen.core import Composition

    from harness import content_hash, site_label

    # One Composition per distinct site occupancy, shared by the sites (as pymatgen's own
    # supercells do); labels come from the very objects the structures will hold.
    table = [Composition(dict(sp)) for sp in packed["species_table"]]
    labels = [site_label(c.items()) for c in table]
    offsets, coords, site_species, lattices = (
        packed["offsets"], packed["coords"], packed["site_species"], packed["lattices"]
    )
    builder = _LazyBuilder(lattices, coords, offsets, site_species, table)
    out = []
    for i, material_id in enumerate(packed["ids"]):
        start, stop = offsets[i], offsets[i + 1]
        digest = content_hash(lattices[i], coords[start:stop], [labels[j] for j in site_species[start:stop]])
        out.append(Material.lazy(material_id, partial(builder.build, i), props(dict(packed["props"][i])),
                                 content_hash=digest))
    return out


class _LazyBuilder:
    """Builds material i's Structure from the shared arrays when it is first asked for."""

    def __init__(self, lattices, coords, offsets, site_species, table):
        self.lattices, self.coords, self.offsets, self.site_species, self.table = (
            lattices, coords, offsets, site_species, table
        )
        self._build = None

    def build(self, i: int):
        from pymatgen.core import Lattice

        start, stop = self.offsets[i], self.offsets[i + 1]
        args = (Lattice(self.lattices[i]), [self.table[j] for j in self.site_species[start:stop]],
                self.coords[start:stop].copy())
        if self._build is None:
            self._build = _structure_builder(*args)
        return self._build(*args)


def _structure_builder(lattice, species, frac) -> Any:
    """`_fast_structure` when it builds exactly what pymatgen's constructor builds for a
    sample, else the constructor itself (a pymatgen release may change its internals)."""
    from pymatgen.core import Structure

    def public(lattice, species, frac):
        return Structure(lattice, species, frac)

    try:
        slow, fast = public(lattice, species, frac), _fast_structure(lattice, species, frac)
        same = (
            vars(slow).keys() == vars(fast).keys()
            and all(vars(a).keys() == vars(b).keys() for a, b in zip(slow, fast))
            and slow == fast
            and fast.as_dict() == slow.as_dict()
        )
    except Exception:  # noqa: BLE001 - any surprise means: use the public constructor
        same = False
    if not same:
        log.debug("file: pymatgen internals differ from what the fast path expects; using Structure()")
    return _fast_structure if same else public


def _fast_structure(lattice, species, frac):
    """A Structure from trusted, already validated parts, skipping the per-site checks and
    conversions of `Structure.__init__` (most of a warm load's time). It sets the same
    attributes that constructor sets; `_structure_builder` verifies that before use."""
    from pymatgen.core import PeriodicSite, Structure

    sites = []
    for composition, coords in zip(species, frac):
        site = PeriodicSite.__new__(PeriodicSite)
        site.__dict__.update(
            _lattice=lattice, _frac_coords=coords, _species=composition, _coords=None, properties={}, _label=None
        )
        sites.append(site)
    structure = Structure.__new__(Structure)
    structure.__dict__.update(_lattice=lattice, _sites=tuple(sites), _charge=None, _properties={})
    return structure


def read_cache(cache_file: Path) -> dict[str, Any] | None:
    if not cache_file.is_file():
        return None
    try:
        with open(cache_file, "rb") as handle:
            data = pickle.load(handle)
        if data.get("code") == CODE_VERSION:
            return data
    except Exception as exc:  # a torn or foreign file: parse again
        log.warning("file: ignoring unreadable cache %s (%s)", cache_file, exc)
    return None


def write_cache(cache_file: Path, data: dict[str, Any]) -> None:
    write_atomic(cache_file, pickle.dumps({**data, "code": CODE_VERSION}, protocol=pickle.HIGHEST_PROTOCOL))


def write_atomic(path: Path, data: bytes) -> None:
    """Write via a temporary file and a rename: an interruption never leaves a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("wb", dir=path.parent, delete=False, suffix=".tmp") as handle:
        handle.write(data)
        tmp = handle.name
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # like any other file the user writes
    os.replace(tmp, path)
