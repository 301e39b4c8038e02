"""Locating, naming and hashing the files a dataset reads."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from pathlib import Path

from harness import UserError

FORMATS = ("auto", "csv", "tsv", "parquet", "json", "extxyz", "folder", "cif_folder")
SUFFIX_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".xyz": "extxyz",
    ".extxyz": "extxyz",
}
STRUCTURE_SUFFIXES = (".cif", ".vasp", ".poscar", ".contcar")  # and files named POSCAR*/CONTCAR*


def resolve_path(raw: str) -> Path:
    if not raw:
        raise UserError('[dataset] path is empty: set path = "..." to a CSV, JSON, Parquet or XYZ file or a folder')
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
    """The file's format from `format`, else from its name (a folder is a folder of
    structure files)."""
    if fmt == "cif_folder":
        return "folder"
    if fmt != "auto":
        return fmt
    if path.is_dir():
        return "folder"
    suffixes = [s.lower() for s in path.suffixes if s.lower() not in (".gz", ".gzip")]
    if suffixes and suffixes[-1] in SUFFIX_FORMATS:
        return SUFFIX_FORMATS[suffixes[-1]]
    raise UserError(
        f"cannot read {path}: cannot tell its format from the name; set [dataset] format to one of "
        f"{', '.join(f for f in FORMATS if f not in ('auto', 'cif_folder'))}"
    )


def is_structure_file(path: Path) -> bool:
    name = path.name.lower()
    return path.is_file() and (path.suffix.lower() in STRUCTURE_SUFFIXES or name.startswith(("poscar", "contcar")))


def content_hash(path: Path, fmt: str) -> str:
    """sha256 of the bytes: one file, or a folder's tables and structure files."""
    digest = hashlib.sha256()
    try:
        if fmt == "folder":
            for item in sorted(path.iterdir()):
                if item.is_file():
                    digest.update(os.fsencode(item.name) + b"\0")  # a non-UTF-8 name hashes its bytes
                    _update(digest, item)
        else:
            _update(digest, path)
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}; check the path and its permissions") from None
    return digest.hexdigest()


def _update(digest, path: Path) -> None:
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)


def printable_name(name: str) -> str:
    """A file name as text: bytes that are not UTF-8 (a Latin-1 name on Linux arrives as
    surrogates) written as \\xNN, so ids, messages and caches never meet a surrogate."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def safe_stem(path: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", path.name)[:60]


def is_gzip(path: Path) -> bool:
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def open_text(path: Path):
    """Open a text file, gunzipping it when its first bytes say so (whatever the suffix)."""
    if is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")
