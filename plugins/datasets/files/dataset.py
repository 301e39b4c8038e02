"""The `file` dataset: crystals read from users' files in the layouts they come in."""

from __future__ import annotations

import difflib
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Sequence

from harness import Dataset, LoadContext, Material, UserError, code_identity

from .. import sample
from . import compact, parse
from .folder import ID_PROP_FILE, properties_path, read_folder
from .jsonfile import ORIENTS, read_json
from .messages import capped
from .sources import FORMATS, SUFFIX_FORMATS, content_hash, detect_format, resolve_path, safe_stem
from .rows import RawRow, Table, to_rows
from .tabular import read_table
from .values import as_container, lookup, nested_keys, split_path
from .xyz import read_extxyz

log = logging.getLogger(__name__)

SOURCE_FILE = "source_file"  # the prop naming each material's file when `path` lists several


@dataclass
class FileDataset(Dataset):
    name: ClassVar[str] = "file"
    description: ClassVar[str] = (
        "Crystals from files: CSV/TSV/Parquet with a CIF or POSCAR column, JSON (records, {id: record}, "
        "pandas orients, matbench), extended XYZ, or a CIF/POSCAR folder with id_prop.csv or a properties table"
    )

    reads_paths: ClassVar[tuple[str, ...]] = (*SUFFIX_FORMATS, "/")  # `harness predict table.csv` or `FOLDER/`

    path: str | list[str] = ""  # one file or folder, or several files pooled
    format: str = "auto"  # auto | csv | tsv | parquet | json | extxyz | folder
    orient: str = "auto"  # JSON layout: auto | records | index | columns | split | table
    id_column: str = ""  # empty: material_id, mp_id, id ... or the layout's index, else the row number
    structure_column: str = ""  # empty: the column whose values are CIF/POSCAR text or Structure dicts
    properties: str = ""  # folder layout: a table of properties (id column + values) instead of id_prop.csv
    # property name -> the file's column, or "column.key" for a key of a nested value
    columns: dict[str, str] = field(default_factory=dict)
    # A seeded, stratified sample of each file's rows, for quick runs and fair subsets:
    # `limit` rows and/or a `fraction` of them (both: the smaller), stratified by the
    # property `stratify` (a column, a `columns` alias or "column.key"; numbers binned by
    # quantiles), drawn with `sample_seed`. Without `stratify` the sample is uniform.
    limit: int | None = None
    fraction: float | None = None
    stratify: str = ""
    sample_seed: int = 0
    # Counts of (normalised) parser warnings of the last load: a summary, not one line each.
    parse_warnings: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise UserError(f"[dataset] format = {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.orient not in ORIENTS:
            raise UserError(f"[dataset] orient = {self.orient!r} is not one of {', '.join(ORIENTS)}")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"[dataset] limit = {self.limit} must be a positive number of rows")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise UserError(f"[dataset] fraction = {self.fraction} must be in (0, 1], e.g. 0.1 for a tenth of the rows")
        if isinstance(self.path, list) and not self.path:
            raise UserError(
                '[dataset] path = [] lists no file; give one path or several, e.g. ["train.csv", "test.csv"]'
            )

    @property
    def paths(self) -> list[str]:
        return list(self.path) if isinstance(self.path, list) else [self.path]

    def content_id(self) -> str:
        """The files' bytes and every parameter that shapes what `load` returns: a rerun
        knows what is done without parsing, and an edited row is a new identity."""
        paths = [resolve_path(raw) for raw in self.paths]
        key = self._cache_key(paths, [detect_format(p, self.format) for p in paths])
        return hashlib.sha256(f"{key}|{json.dumps(self.columns, sort_keys=True)}".encode()).hexdigest()[:32]

    def load(self, ctx: LoadContext) -> list[Material]:
        sources = [(raw, resolve_path(raw)) for raw in self.paths]
        formats = [detect_format(path, self.format) for _, path in sources]
        key = self._cache_key([path for _, path in sources], formats)
        first = sources[0][1]
        name = safe_stem(first) + (f"+{len(sources) - 1}" if len(sources) > 1 else "")
        cache_file = Path(ctx.cache_dir) / "datasets" / "file" / f"{name}-{key[:20]}.npz"
        cache_file = cache_file.with_name(
            f"{cache_file.stem}-{code_identity(type(self))[:8]}.npz"
        )  # edited reader: reparse
        cached = compact.read_cache(cache_file)
        described = ", ".join(path.name for _, path in sources)
        if cached is None:
            rows, skipped = self._read_all(sources, formats)
            records, parse_skips, warned = parse.parse_rows(rows, ctx, f"parsing {described}")
            cached = {"records": compact.pack(records), "skipped": skipped + parse_skips, "warnings": warned}
            compact.write_cache(cache_file, cached)
            level = logging.INFO
        else:
            log.debug("file: %s read from cache %s", described, cache_file)
            level = logging.DEBUG  # already reported when it was parsed
        for material_id, reason in cached["skipped"]:
            ctx.skip(material_id, reason)
        self.parse_warnings = dict(cached["warnings"])
        summary = parse.warnings_summary(cached["warnings"], described)
        if summary:
            log.log(level, summary)
        self._check_columns(cached["records"]["props"], described)
        self._seen = (described, "folder" in formats, cached["records"]["props"][:200])
        return compact.unpack(cached["records"], self._alias)

    def missing_property_hint(self, reads: Sequence[str]) -> str | None:
        """A folder without a properties file needs `properties = ...`; a nested column
        holding the property needs the "column.key" form."""
        if not getattr(self, "_seen", None):
            return None
        described, folder, props = self._seen
        present = set().union(*props) - {SOURCE_FILE} if props else set()
        if folder and not present:
            return (
                f"{described} has no properties file: add {ID_PROP_FILE} (one line `id,value` per structure) "
                f'with columns = {{ {reads[0]} = "target" }}, or set [dataset] properties = '
                f'"<a CSV/JSON table with an id column and a {reads[0]} column>"'
            )
        for column in sorted(present):
            values = [p[column] for p in props if p.get(column) is not None]
            keys = list(dict.fromkeys(k for v in values[:50] for k in nested_keys(v)))
            for read in reads:
                for key in keys:
                    if difflib.SequenceMatcher(None, read.lower(), key.lower()).ratio() >= 0.6:
                        return (
                            f'{column!r} holds nested values with a key {key!r}: map it with the "column.key" '
                            f'form, columns = {{ {read} = "{column}.{key}" }} under [dataset]'
                        )
        return None

    def _read_all(
        self, sources: list[tuple[str, Path]], formats: list[str]
    ) -> tuple[list[RawRow], list[tuple[str, str]]]:
        """Every file's rows, pooled; with several files each row records its file and
        ids that are only row numbers are made unique per file."""
        rows: list[RawRow] = []
        for (raw, path), fmt in zip(sources, formats):
            table = self._read_table(path, fmt)
            file_rows, named = to_rows(table, "" if fmt == "folder" else self.id_column, self.structure_column)
            file_rows = self._sample(file_rows, path)
            if len(sources) > 1:
                tag = Path(raw).name
                file_rows = [
                    (
                        material_id if named or fmt == "folder" else f"{tag}:{material_id}",
                        structure,
                        {**props, SOURCE_FILE: raw},
                    )
                    for material_id, structure, props in file_rows
                ]
            rows.extend(file_rows)
        return screen_rows(rows)

    def _read_table(self, path: Path, fmt: str) -> Table:
        try:
            if fmt in ("csv", "tsv", "parquet"):
                return read_table(path, fmt)
            if fmt == "json":
                return read_json(path, self.orient, self.structure_column)
            if fmt == "extxyz":
                return read_extxyz(path)
            return read_folder(path, self.properties, self.id_column)
        except (OSError, EOFError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            cause = getattr(exc, "strerror", None) or f"{type(exc).__name__}: {exc}"
            raise UserError(
                f"cannot read {path}: {cause}; check that it is a {fmt} file (or set [dataset] format)"
            ) from None

    def _cache_key(self, paths: list[Path], formats: list[str]) -> str:
        params = {
            "paths": [str(p) for p in self.paths],
            "format": formats,
            "orient": self.orient,
            "id_column": self.id_column,
            "structure_column": self.structure_column,
            "properties": self.properties,
            "limit": self.limit,
            "sample": [self.fraction, self.stratify, self.sample_seed, sample.__name__, "v1"],
            "code": compact.CODE_VERSION,
            "content": [content_hash(p, f) for p, f in zip(paths, formats)],
        }
        if self.properties and formats[0] == "folder":
            params["properties_content"] = content_hash(properties_path(paths[0], self.properties), "table")
        return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()

    def _sample(self, rows: list[RawRow], path: Path) -> list[RawRow]:
        """The seeded, stratified sample of one file's rows that `limit`/`fraction` ask for."""
        n = sample.sample_size(len(rows), self.limit, self.fraction)
        if n >= len(rows):
            return rows
        if self.stratify:
            column = self.columns.get(self.stratify, self.stratify)
            values = [lookup(props, column) for _, _, props in rows]
            if all(v is None for v in values):
                present = sorted(set().union(*(props for _, _, props in rows[:200])))
                raise UserError(
                    f"[dataset] stratify = {self.stratify!r}, but {path.name} has no such column; "
                    f"its columns: {capped(present)}"
                )
            keys = sample.strata(values)
        else:
            keys = [0] * len(rows)
        chosen = sample.stratified_sample(keys, n, self.sample_seed)
        log.info(
            "file: %s: a seeded sample of %d of %d rows (%s)",
            path.name,
            n,
            len(rows),
            f"stratified by {self.stratify}" if self.stratify else "uniform; set stratify to keep class shares",
        )
        return [rows[i] for i in chosen]

    def _check_columns(self, props: list[dict[str, Any]], source: str) -> None:
        """Every `columns` target exists (as a column, or a key inside one in some row)."""
        present = set().union(*props) if props else set()
        for prop, column in self.columns.items():
            if column in present:
                _check_scalar(prop, column, props, source)
                continue
            head, path = split_path(column, present)
            if head is None:
                raise UserError(
                    f"[dataset] columns maps {prop!r} to {column!r}, but {source} has no column {column!r}; "
                    f"its columns: {capped(sorted(present))}"
                )
            if not any(lookup(p, column) is not None for p in props):
                keys = list(dict.fromkeys(k for p in props[:200] for k in nested_keys(_walk(p, head, path[:-1]))))
                where = head + "".join(f".{k}" for k in path[:-1])
                raise UserError(
                    f"[dataset] columns maps {prop!r} to {column!r}, but no value of {where!r} in {source} has a "
                    f"key {path[-1]!r}; its keys: {capped(keys)}"
                )

    def _alias(self, props: dict[str, Any]) -> dict[str, Any]:
        """Add the `columns` aliases; every column also stays under its own name."""
        if not self.columns:
            return props
        return {**props, **{prop: lookup(props, column) for prop, column in self.columns.items()}}


def _check_scalar(prop: str, column: str, props: list[dict[str, Any]], source: str) -> None:
    """A column whose every value is nested (a dict or "{'vrh': 167.0, ...}" text) cannot be
    a task's number: say so, with the "column.key" form that reads one key."""
    values = [p[column] for p in props if p.get(column) is not None][:200]
    if not values or not all(isinstance(as_container(v), (dict, list)) for v in values):
        return
    keys = list(dict.fromkeys(k for v in values for k in nested_keys(v)))
    guess = max(keys, key=lambda k: difflib.SequenceMatcher(None, prop.lower(), k.lower()).ratio(), default="<key>")
    raise UserError(
        f"[dataset] columns maps {prop!r} to {column!r}, but its values in {source} are nested "
        f'(e.g. {str(values[0])[:60]!r}); map one key with the "column.key" form, e.g. '
        f'columns = {{ {prop} = "{column}.{guess}" }}; its keys: {capped(keys)}'
    )


def _walk(props: dict[str, Any], head: str, path: list[str]) -> Any:
    """The nested value at head.path... (for listing the keys it offers)."""
    return lookup(props, ".".join([head, *path])) if path else props.get(head)


def screen_rows(rows: list[RawRow]) -> tuple[list[RawRow], list[tuple[str, str]]]:
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
