"""The `mp` dataset: Materials Project summary documents through mp-api's `MPRester`.

The download is cached and resumable. It first lists the material ids that match
`criteria` (saved as `query.json`), then fetches the documents in chunks of ids, writing
each finished chunk as gzipped JSON lines (`chunk-00000.jsonl.gz`, one material a line:
id, structure dict, props). A rerun fetches only the chunks that are missing; once all are
there, loading needs no network (and no API key). The parsed materials are also kept in
the compact form of the `file` dataset, so later loads skip structure parsing too.

`fetch(dataset, ctx)` runs just the download (for `harness fetch mp`).
"""

from __future__ import annotations

import gzip
import hashlib
import inspect
import json
import logging
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from harness import Dataset, LoadContext, Material, UserError
from harness_plugins.datasets import files, sample

log = logging.getLogger(__name__)

CODE_VERSION = "1"  # bump when the cache layout or the props change
DEFAULT_ENDPOINT = "https://api.materialsproject.org/"
# Summary fields downloaded by default: what the paper's tasks read.
DEFAULT_FIELDS = (
    "material_id",
    "structure",
    "band_gap",
    "is_metal",
    "bulk_modulus",
    "shear_modulus",
    "energy_above_hull",
    "symmetry",
    "formula_pretty",
    "database_IDs",
)
REQUIRED_FIELDS = ("material_id", "structure")
# Summary field -> the props it becomes (named as the tasks read them).
PROPS_FROM = {
    "band_gap": ("band_gap",),
    "is_metal": ("is_metal",),
    "bulk_modulus": ("k_vrh",),
    "shear_modulus": ("g_vrh",),
    "energy_above_hull": ("e_above_hull",),
    "symmetry": ("crystal_system", "spacegroup"),
    "formula_pretty": ("formula",),
    "database_IDs": ("icsd_ids",),
}
ID_PAGE = 1000  # ids per listing request (the MP API's page limit)
KEY_HELP = "set MP_API_KEY or [dataset] api_key (a 32-character key from https://materialsproject.org/api)"


@dataclass
class MPDataset(Dataset):
    name: ClassVar[str] = "mp"
    description: ClassVar[str] = "Materials Project summary data via mp-api (cached, resumable download)"

    api_key: str = field(default="", repr=False, metadata={"secret": True})  # empty: MP_API_KEY
    endpoint: str = DEFAULT_ENDPOINT
    fields: list[str] = field(default_factory=lambda: list(DEFAULT_FIELDS))
    criteria: dict[str, Any] = field(default_factory=dict)  # summary search filters, e.g. {"num_elements": [1, 2]}
    chunk_size: int = 500  # material ids per request and per cache file
    # A seeded sample of the matching materials (as the `file` dataset draws it), not the
    # first ones the API lists: `limit` materials and/or a `fraction` of them (both: the
    # smaller), stratified by the summary field `stratify` (e.g. "is_metal", "band_gap",
    # "symmetry.crystal_system"; numbers binned by quantiles), drawn with `sample_seed`.
    # Only the sample's documents are downloaded; the id listing covers every match.
    limit: int | None = None
    fraction: float | None = None
    stratify: str = ""
    sample_seed: int = 0

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise UserError(f"[dataset] chunk_size = {self.chunk_size} must be a positive number of materials")
        if self.limit is not None and self.limit < 1:
            raise UserError(f"[dataset] limit = {self.limit} must be a positive number of materials")
        if self.fraction is not None and not 0 < self.fraction <= 1:
            raise UserError(
                f"[dataset] fraction = {self.fraction} must be in (0, 1], e.g. 0.1 for a tenth of the materials"
            )

    @property
    def sampled(self) -> bool:
        return self.limit is not None or self.fraction is not None

    def fetch(self, ctx: LoadContext) -> str:
        """`harness fetch mp`: fill the cache ahead of a run."""
        return str(fetch(self, ctx))

    def load(self, ctx: LoadContext) -> list[Material]:
        folder = cache_folder(self, ctx)
        packed_file = folder / "materials.pkl"
        cached = files.read_cache(packed_file)
        if cached is None:
            fetch(self, ctx)
            rows, skipped = [], []
            for row in read_chunks(folder):
                if row[1]:
                    rows.append(row)
                else:
                    skipped.append((row[0], "no structure in the document"))
            listed = json.loads((folder / "query.json").read_text())["ids"]
            returned = {row[0] for row in rows} | {material_id for material_id, _ in skipped}
            skipped += [(i, "listed but not returned by the Materials Project") for i in listed if i not in returned]
            records, parse_skips, warned = files.parse_rows(rows, ctx, "parsing mp structures")
            skipped += parse_skips
            cached = {"records": files.pack(records), "skipped": skipped, "warnings": warned}
            files.write_cache(packed_file, cached)
            summary = files.warnings_summary(warned, "the mp download")
            if summary:
                log.info(summary)
        for material_id, reason in cached["skipped"]:
            ctx.skip(material_id, reason)
        return files.unpack(cached["records"])


# --------------------------------------------------------------------------- download


@dataclass(frozen=True)
class FetchSummary:
    """What `fetch` did, for `harness fetch mp` to print."""

    materials: int  # ids matching the query (after `limit`/`fraction`)
    chunks: int
    downloaded: int  # chunks fetched by this call
    cached: int  # chunks that were already there
    folder: Path
    db_version: str = ""

    def __str__(self) -> str:
        return (
            f"mp: {self.materials} materials in {self.chunks} chunks ({self.downloaded} downloaded now, "
            f"{self.cached} already cached; database {self.db_version or 'unknown'}) in {self.folder}"
        )


def fetch(dataset: MPDataset, ctx: LoadContext) -> FetchSummary:
    """Download what the cache lacks: the id list, then each missing chunk of documents.

    Safe to interrupt: finished chunks are kept and a rerun fetches only the rest."""
    folder = cache_folder(dataset, ctx)
    folder.mkdir(parents=True, exist_ok=True)
    query_file = folder / "query.json"
    client = None
    if query_file.is_file():
        query = json.loads(query_file.read_text())
    else:
        client = _client(dataset)
        _check_query(client, dataset)
        ids = _list_ids(client, dataset)
        query = {**_query_params(dataset), "ids": ids, "db_version": client.db_version or ""}
        files.write_atomic(query_file, json.dumps(query).encode())
    ids = query["ids"]
    chunks = [ids[i : i + dataset.chunk_size] for i in range(0, len(ids), dataset.chunk_size)]
    missing = [n for n in range(len(chunks)) if not chunk_file(folder, n).is_file()]
    if missing:
        client = client or _client(dataset)
        wanted = request_fields(dataset.fields)
        done = len(chunks) - len(missing)
        for n in ctx.progress(missing, total=len(missing), description="downloading mp"):
            try:
                docs = _fetch_docs(client, chunks[n], wanted)
            except Exception as exc:
                raise _download_error(exc, dataset, f"after {done} of {len(chunks)} chunks", folder) from None
            lines = (json.dumps(record_from(doc, wanted), separators=(",", ":")) for doc in docs)
            files.write_atomic(chunk_file(folder, n), gzip.compress("\n".join(lines).encode()))
            done += 1
    cached = len(chunks) - len(missing)
    return FetchSummary(len(ids), len(chunks), len(missing), cached, folder, query.get("db_version", ""))


def cache_folder(dataset: MPDataset, ctx: LoadContext) -> Path:
    """One folder per query: endpoint, criteria, fields, limit and chunking."""
    key = hashlib.sha256(json.dumps(_query_params(dataset), sort_keys=True, default=str).encode()).hexdigest()
    return Path(ctx.cache_dir) / "datasets" / "mp" / key[:20]


def _query_params(dataset: MPDataset) -> dict[str, Any]:
    return {
        "endpoint": dataset.endpoint.rstrip("/") + "/",
        "criteria": dataset.criteria,
        "fields": sorted(request_fields(dataset.fields)),
        "limit": dataset.limit,
        "chunk_size": dataset.chunk_size,
        "code": CODE_VERSION,
        # only when sampling, so a download of every match keeps its folder
        **({"sample": [dataset.fraction, dataset.stratify, dataset.sample_seed, "v1"]} if dataset.sampled else {}),
    }


def chunk_file(folder: Path, n: int) -> Path:
    return folder / f"chunk-{n:05d}.jsonl.gz"


def request_fields(fields: list[str]) -> list[str]:
    return list(dict.fromkeys([*REQUIRED_FIELDS, *fields]))


def _client(dataset: MPDataset):
    """An `MPRester` for the dataset's endpoint, or a UserError naming what is wrong."""
    if dataset.api_key:
        key, source = dataset.api_key, "[dataset] api_key"
    else:
        key, source = os.environ.get("MP_API_KEY", ""), "MP_API_KEY"
    if not key:
        raise UserError(f"no Materials Project API key: {KEY_HELP}")
    import requests

    try:
        from mp_api.client import MPRester
        from mp_api.client.core.exceptions import MPRestError
    except ImportError:
        raise UserError("the mp dataset needs the Materials Project client: pip install 'harness[mp]'") from None

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            client = MPRester(api_key=key, endpoint=dataset.endpoint, use_document_model=False, mute_progress_bars=True)
    except MPRestError as exc:
        raise UserError(f"the API key from {source} is not valid ({exc}); {KEY_HELP}") from None
    except requests.RequestException as exc:
        raise UserError(
            f"cannot reach the Materials Project at {dataset.endpoint} ({type(exc).__name__}); "
            "check the network or [dataset] endpoint"
        ) from None
    for w in caught:
        log.debug("mp-api: %s", w.message)
    return client


def _check_query(client, dataset: MPDataset) -> None:
    """Unknown fields or filters are user errors, found before anything is downloaded."""
    summary = client.materials.summary
    valid_fields = set(summary.available_fields)
    unknown = [f for f in request_fields(dataset.fields) if f.split(".", 1)[0] not in valid_fields]
    if unknown:
        raise UserError(
            f"[dataset] fields has unknown summary fields {', '.join(unknown)}; "
            f"valid: {', '.join(sorted(valid_fields))}"
        )
    control = {"num_chunks", "chunk_size", "all_fields", "fields", "kwargs"}
    known = [p for p in inspect.signature(summary.search).parameters if p not in control and not p.startswith("_")]
    if dataset.stratify and dataset.stratify.split(".", 1)[0] not in valid_fields:
        raise UserError(
            f"[dataset] stratify = {dataset.stratify!r} is not a summary field; "
            f"use one of {', '.join(sorted(valid_fields))} (a dotted path inside one, e.g. symmetry.crystal_system)"
        )
    unknown = sorted(set(dataset.criteria) - set(known))
    if unknown:
        raise UserError(
            f"[dataset] criteria has unknown filters {', '.join(unknown)}; "
            f"use those of MPRester.materials.summary.search: {', '.join(sorted(known))}"
        )


def _list_ids(client, dataset: MPDataset) -> list[str]:
    """The material ids matching `criteria` (paged HTTP queries; never mp-api's bulk S3
    path), or the seeded sample of them that `limit`/`fraction` ask for."""
    fields = ["material_id"]
    if dataset.stratify:
        fields.append(dataset.stratify.split(".", 1)[0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # mp-api's own chatter; failures raise
            # A finite `num_chunks` keeps mp-api on the HTTP API even without criteria.
            docs = client.materials.summary.search(
                **dataset.criteria, fields=fields, all_fields=False, chunk_size=ID_PAGE, num_chunks=10**9
            )
    except TypeError as exc:
        raise UserError(
            f"[dataset] criteria: {exc}; use the keyword arguments of MPRester.materials.summary.search"
        ) from None
    except Exception as exc:
        raise _download_error(exc, dataset, "while listing the material ids", None) from None
    if not dataset.sampled:
        return [str(doc["material_id"]) for doc in docs]
    # by id: the sample does not depend on the order the API lists the matches in
    docs = sorted(docs, key=lambda doc: _id_order(str(doc["material_id"])))
    ids = [str(doc["material_id"]) for doc in docs]
    n = sample.sample_size(len(ids), dataset.limit, dataset.fraction)
    keys = sample.strata([_field(doc, dataset.stratify) for doc in docs]) if dataset.stratify else [0] * len(ids)
    chosen = sample.stratified_sample(keys, n, dataset.sample_seed)
    log.info(
        "mp: a seeded sample of %d of %d matching materials (%s)",
        n,
        len(ids),
        f"stratified by {dataset.stratify}" if dataset.stratify else "uniform; set stratify to keep class shares",
    )
    return [ids[i] for i in chosen]


def _id_order(material_id: str) -> tuple[str, int, str]:
    """mp-2 before mp-10."""
    prefix, _, number = material_id.rpartition("-")
    return (prefix, int(number), "") if number.isdigit() else (material_id, -1, material_id)


def _field(doc: dict[str, Any], path: str) -> Any:
    """A (dotted) summary field of a listed document, as one value to stratify on: a
    modulus's VRH average, an enum's value, None where the document lacks it."""
    value: Any = doc
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    if isinstance(value, dict) and "vrh" in value:
        value = value["vrh"]
    return _enum_value(value)


def _fetch_docs(client, ids: list[str], wanted: list[str]) -> list[dict[str, Any]]:
    """The summary documents of these ids, with the `wanted` fields.

    Goes through the rester's generic `_search` with `_fields` set: `search(fields=...)`
    rebuilds the summary document's JSON schema once per field on every call (about a
    second of CPU per chunk); `_check_query` has validated the fields once already."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return client.materials.summary._search(
            material_ids=",".join(ids),
            _fields=",".join(wanted),
            all_fields=False,
            chunk_size=min(len(ids), ID_PAGE),
        )


def _download_error(exc: Exception, dataset: MPDataset, when: str, folder: Path | None) -> UserError:
    """Turn what mp-api raised into one line naming the cause and the fix."""
    message = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))  # mp-api colours some messages
    status = re.search(r"status code (\d{3})", message)
    if status and status.group(1) in ("401", "403"):
        source = "[dataset] api_key" if dataset.api_key else "MP_API_KEY"
        return UserError(
            f"the Materials Project rejected the API key from {source} (HTTP {status.group(1)}); {KEY_HELP}"
        )
    if "invalid fields" in message or "unknown to" in message or "status code 4" in message:
        first = message.strip().splitlines()[0].split(" Available fields")[0][:300]
        return UserError(f"the Materials Project refused the query ({first}); check [dataset] fields and criteria")
    kept = f"; finished chunks are kept in {folder}" if folder else ""
    cause = message.strip().splitlines()[0][:200] if message.strip() else type(exc).__name__
    return UserError(
        f"download from {dataset.endpoint} interrupted {when} ({type(exc).__name__}: {cause}); "
        f"run again to resume{kept}"
    )


# --------------------------------------------------------------------------- documents -> records


def record_from(doc: dict[str, Any], wanted: list[str]) -> dict[str, Any]:
    """One cache line: id, structure dict and props named as the tasks read them."""
    props: dict[str, Any] = {}
    for key, value in doc.items():
        if key in REQUIRED_FIELDS:
            continue
        if key in PROPS_FROM:
            props.update(zip(PROPS_FROM[key], _convert(key, value)))
        elif key in wanted:
            props[key] = value  # an extra field asked for: kept under its own name
    return {"material_id": str(doc["material_id"]), "structure": doc.get("structure"), "props": props}


def _convert(key: str, value: Any) -> tuple[Any, ...]:
    if key in ("bulk_modulus", "shear_modulus"):
        return (_vrh(value),)
    if key == "symmetry":
        value = value or {}
        number = value.get("number")
        return (_enum_value(value.get("crystal_system")), int(number) if number is not None else None)
    if key == "database_IDs":
        return (list((value or {}).get("icsd", [])),)
    if key in ("band_gap", "energy_above_hull"):
        return (float(value) if value is not None else None,)
    return (value,)


def _vrh(value: Any) -> float | None:
    """Summary docs hold moduli as {"voigt", "reuss", "vrh"}; older ones as a number."""
    if isinstance(value, dict):
        value = value.get("vrh")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _enum_value(value: Any) -> Any:
    return getattr(value, "value", value)


def read_chunks(folder: Path):
    """(id, structure dict, props) rows from every finished chunk, in id-list order."""
    for path in sorted(folder.glob("chunk-*.jsonl.gz")):
        for line in gzip.decompress(path.read_bytes()).decode().splitlines():
            if line.strip():
                record = json.loads(line)
                yield record["material_id"], record["structure"], record["props"]
