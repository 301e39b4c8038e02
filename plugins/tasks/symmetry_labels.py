"""Space-group numbers from spglib, remembered by structure content.

spglib takes ~15 ms on a typical Materials Project cell: 36,738 crystals cost ten minutes,
for each symmetry task, on every run. Numbers are kept in memory (both symmetry tasks of
a run share them) and in an SQLite file in the harness cache, keyed by the structure's
content hash, the tolerance and spglib's version, so a warm run reads them back.
"""

from __future__ import annotations

import atexit
import logging
import sqlite3
import threading
from contextlib import closing
from pathlib import Path

from harness import Material
from harness import ANGLE_TOLERANCE, spacegroup_number

SCHEMA = (
    "CREATE TABLE IF NOT EXISTS spacegroups (hash BLOB, symprec REAL, spglib TEXT, number INTEGER, "
    "PRIMARY KEY (hash, symprec, spglib))"
)
COMMIT_EVERY = 500
log = logging.getLogger("harness_plugins")


def _damaged(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc).lower()
    return "not a database" in text or "malformed" in text or "corrupt" in text


class SpacegroupCache:
    def __init__(self, path: Path):
        import spglib

        self.path = Path(path)
        self.version = f"{spglib.__version__}|angle {ANGLE_TOLERANCE}"  # the shared analysis' search
        self._known: dict[tuple[bytes, float], int] = {}
        self._loaded: set[float] = set()
        self._pending: list[tuple[bytes, float, str, int]] = []
        self._lock = threading.Lock()
        atexit.register(self.flush)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=60)
        db.execute(SCHEMA)
        return db

    def _load(self, symprec: float) -> None:
        try:
            rows = self._read(symprec)
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):  # locked, read-only, unreadable: work without the cache
                rows = []
            else:  # truncated or overwritten: removed and refilled, as the other caches are
                log.warning("damaged cache file %s (%s): removed, it will be recomputed", self.path, exc)
                for p in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm"), Path(f"{self.path}-journal")):
                    try:
                        p.unlink()
                    except OSError:
                        pass
                try:
                    rows = self._read(symprec)
                except sqlite3.Error:
                    rows = []
        self._known.update(
            {(bytes(h), symprec): int(n) for h, n in rows if isinstance(h, bytes) and isinstance(n, int)}
        )
        self._loaded.add(symprec)

    def _read(self, symprec: float) -> list:
        with closing(self._connect()) as db:
            return db.execute(
                "SELECT hash, number FROM spacegroups WHERE symprec = ? AND spglib = ?", (symprec, self.version)
            ).fetchall()

    def number(self, material: Material, symprec: float) -> int:
        """The space-group number of the material's structure; ValueError if spglib finds none."""
        key = material.content_hash
        if key is None:  # a dataset that gives no hash: nothing to key a cache on
            return spacegroup_number(material.structure, symprec)
        with self._lock:
            if symprec not in self._loaded:
                self._load(symprec)
            known = self._known.get((key, symprec))
        if known is not None:
            return known
        number = spacegroup_number(material.structure, symprec)
        with self._lock:
            self._known[(key, symprec)] = number
            self._pending.append((key, symprec, self.version, number))
            if len(self._pending) >= COMMIT_EVERY:
                self._flush_locked()
        return number

    def flush(self) -> None:
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._pending:
            return
        try:
            with closing(self._connect()) as db, db:
                db.executemany("INSERT OR IGNORE INTO spacegroups VALUES (?, ?, ?, ?)", self._pending)
        except sqlite3.Error:  # a read-only or full cache costs speed, never labels
            pass
        self._pending.clear()


_caches: dict[Path, SpacegroupCache] = {}


def spacegroup_cache() -> SpacegroupCache:
    """The cache of the current harness cache folder (tests switch folders)."""
    from harness import cache_dir

    path = cache_dir() / "symmetry" / "spacegroups.sqlite"
    if path not in _caches:
        _caches[path] = SpacegroupCache(path)
    return _caches[path]
