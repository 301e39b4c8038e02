"""Results of finished (combination, seed) studies, in SQLite inside the results folder.

Each unit is written as soon as it finishes, so an interrupted run loses nothing and a
rerun skips what is done. A unit counts as done only under the same fingerprint (the
config parts that shape its result), so changing trials or settings reruns it.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    unit TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    dataset TEXT,
    task TEXT, representation TEXT, perturbation TEXT, model TEXT,
    seed INTEGER,
    metric TEXT, value REAL,
    extra TEXT,            -- JSON {metric: value} of the task's other metrics
    valid_value REAL,
    n_train INTEGER, n_valid INTEGER, n_test INTEGER,
    n_trials INTEGER,
    params TEXT,           -- JSON of the best trial's parameters
    fit_seconds REAL,
    device TEXT,
    finished REAL,
    key TEXT,              -- the study's identity
    predictions TEXT,      -- JSON {ids, y, proba} of the test split
    PRIMARY KEY (unit, fingerprint)
);
"""


@dataclass
class UnitResult:
    unit: str  # combination id + "#seed"
    fingerprint: str
    dataset: str
    task: str
    representation: str
    perturbation: str
    model: str
    seed: int
    metric: str
    value: float
    extra: dict[str, float] = field(default_factory=dict)
    valid_value: float = float("nan")
    n_train: int = 0
    n_valid: int = 0
    n_test: int = 0
    n_trials: int = 0
    params: dict[str, Any] = field(default_factory=dict)
    fit_seconds: float = 0.0
    device: str = "cpu"
    finished: float = field(default_factory=time.time)
    key: str = ""  # the study's identity; rows of one leaderboard row share all but the seed
    predictions: dict[str, list] | None = None  # test split: {"ids", "y", "proba"}


class ResultStore:
    def __init__(self, results_dir: Path):
        self.dir = Path(results_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "results.sqlite"
        with self._connect() as db:
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(results)")}
            for name in ("key", "predictions"):  # results folders from before predictions were stored
                if name not in columns:
                    db.execute(f"ALTER TABLE results ADD COLUMN {name} TEXT")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=60)

    def done(self, unit: str, fingerprint: str) -> bool:
        with self._connect() as db:
            row = db.execute(
                "SELECT 1 FROM results WHERE unit = ? AND fingerprint = ?", (unit, fingerprint)
            ).fetchone()
        return row is not None

    def add(self, r: UnitResult) -> None:
        row = asdict(r)
        row["extra"] = json.dumps(r.extra)
        row["params"] = json.dumps(r.params, default=str)
        row["predictions"] = None if r.predictions is None else json.dumps(r.predictions)
        cols = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self._connect() as db:
            db.execute(f"INSERT OR REPLACE INTO results ({cols}) VALUES ({marks})", tuple(row.values()))

    def all(self, fingerprints: set[str] | None = None) -> Iterator[UnitResult]:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM results ORDER BY finished").fetchall()
        for row in rows:
            d = dict(row)
            if fingerprints is not None and d["fingerprint"] not in fingerprints:
                continue
            d["extra"] = json.loads(d["extra"] or "{}")
            d["params"] = json.loads(d["params"] or "{}")
            d["predictions"] = json.loads(d["predictions"]) if d.get("predictions") else None
            d["key"] = d.get("key") or ""
            yield UnitResult(**d)
