"""Checksummed arrays on disk: what every harness cache is made of.

Arrays go into `.npz` files (no pickles: loading one never runs code) with a checksum
over names, dtypes, shapes and bytes, and optional JSON metadata. A truncated or
bit-flipped file is detected, removed with a one-line warning, and recomputed by the
caller; writes are atomic (temporary file + rename).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from harness.services.errors import UserError

log = logging.getLogger("harness")


def _checksum(arrays: dict[str, np.ndarray], meta: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}".encode())
        h.update(a.tobytes())
    h.update(meta.encode())
    return h.hexdigest()


def write_arrays(path: Path, arrays: dict[str, np.ndarray], meta: dict[str, Any] | None = None) -> None:
    """Write atomically; a filesystem problem is a user error naming the folder."""
    path = Path(path)
    text = json.dumps(meta or {}, sort_keys=True)
    payload = {k: np.asarray(v) for k, v in arrays.items()}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            np.savez(f, __meta__=np.asarray(text), __checksum__=np.asarray(_checksum(payload, text)), **payload)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # a full disk leaves no partial .tmpPID behind
            tmp.unlink(missing_ok=True)
        raise UserError(
            f"cannot write cache file {path}: {exc.strerror or exc}; free space or set "
            "HARNESS_CACHE_DIR to a writable folder"
        ) from None


def read_arrays(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
    """The arrays and metadata, or None when absent or damaged (a damaged file is removed
    with a warning, so the caller recomputes it)."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files if k not in ("__meta__", "__checksum__")}
            text = str(z["__meta__"])
            stored = str(z["__checksum__"])
        if stored != _checksum(arrays, text):
            raise ValueError("checksum mismatch")
        return arrays, json.loads(text)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, json.JSONDecodeError) as exc:
        log.warning("damaged cache file %s (%s): removed, it will be recomputed", path, exc)
        try:
            path.unlink()
        except OSError:
            pass
        return None


def pack_ragged(arrays: list[np.ndarray | None]) -> dict[str, np.ndarray]:
    """Arrays of different shapes (1D or 2D; None for a missing one) as three flat arrays
    that `write_arrays` can store: float32 data, offsets into it, and each shape."""
    flat, offsets, shapes = [], [0], []
    for a in arrays:
        if a is None:
            shapes.append((-1, -1))
            offsets.append(offsets[-1])
            continue
        a = np.asarray(a, dtype=np.float32)
        shapes.append(a.shape if a.ndim == 2 else (a.shape[0], -1))
        flat.append(a.ravel())
        offsets.append(offsets[-1] + a.size)
    return {
        "data": np.concatenate(flat) if flat else np.zeros(0, np.float32),
        "offsets": np.asarray(offsets, dtype=np.int64),
        "shapes": np.asarray(shapes, dtype=np.int64).reshape(-1, 2),
    }


def unpack_ragged(arrays: dict[str, np.ndarray]) -> list[np.ndarray | None]:
    """The arrays `pack_ragged` packed (views into one buffer)."""
    data, offsets, shapes = arrays["data"], arrays["offsets"], arrays["shapes"]
    return [
        None if shape[0] < 0 else data[offsets[i] : offsets[i + 1]].reshape(tuple(int(s) for s in shape if s >= 0))
        for i, shape in enumerate(shapes)
    ]


def write_json(path: Path, value: Any) -> None:
    """JSON in an array file, with the same checksum and atomicity."""
    write_arrays(path, {}, {"value": value})


def read_json(path: Path) -> Any | None:
    got = read_arrays(path)
    return None if got is None else got[1].get("value")
