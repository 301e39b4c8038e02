"""The results store: finished studies, claims on running ones, and Optuna's trials.

One SQL database holds everything, through SQLAlchemy: SQLite inside the results folder
by default, or any URL SQLAlchemy and Optuna's RDB storage understand (PostgreSQL for many
machines). At most one result exists per study key (insert-if-absent); a study is claimed
before it runs (a row with a heartbeat, never a file lock), and a claim whose heartbeat is
older than its time-to-live is taken over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
import weakref
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Iterator

import sqlalchemy as sa

from harness.services.errors import UserError
from harness.services.records import AXES, UnitResult  # UnitResult stays importable from here

log = logging.getLogger("harness")

CLAIM_TTL = float(os.environ.get("HARNESS_CLAIM_TTL", "60"))  # seconds without a heartbeat
# How long a finished result waits for a database server that stopped answering.
RECONNECT_SECONDS = float(os.environ.get("HARNESS_RECONNECT_SECONDS", "120"))

_meta = sa.MetaData()
RESULTS = sa.Table(
    "harness_results",
    _meta,
    sa.Column("key", sa.String(64), primary_key=True),  # the study's identity
    sa.Column("unit", sa.Text, nullable=False),  # dataset:combination#seed, for people
    *(sa.Column(axis, sa.Text) for axis in AXES),
    sa.Column("seed", sa.Integer),
    sa.Column("metric", sa.Text),
    sa.Column("value", sa.Float),
    sa.Column("valid_value", sa.Float),
    sa.Column("n_train", sa.Integer),
    sa.Column("n_valid", sa.Integer),
    sa.Column("n_test", sa.Integer),
    sa.Column("n_trials", sa.Integer),
    sa.Column("fit_seconds", sa.Float),
    sa.Column("device", sa.Text),
    sa.Column("finished", sa.Float),
    sa.Column("superseded", sa.Boolean, nullable=False, default=False),
    sa.Column("body", sa.Text),  # JSON: extra metrics, params, identity, versions, predictions
    # sha256 of the row as written (`_checksum`): a row that still matches it is readable
    # without parsing its body. NULL in rows written before the column (validated once).
    sa.Column("checksum", sa.String(64)),
)
MODELS = sa.Table(
    "harness_models",
    _meta,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("format", sa.Text, nullable=False),  # how the bytes were written; never a pickle
    sa.Column("blob", sa.LargeBinary, nullable=False),
)
CLAIMS = sa.Table(
    "harness_claims",
    _meta,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("owner", sa.Text, nullable=False),
    sa.Column("heartbeat", sa.Float, nullable=False),
)

_SCHEMA_LOCK = 0x6861726E  # PostgreSQL advisory lock held while creating tables ("harn")

# Stored in columns; everything else of a UnitResult travels in `body`.
_COLUMNS = {c.name for c in RESULTS.columns} - {"body", "checksum"}


def new_owner() -> str:
    """A claim owner: unique per process and run, readable in a table."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def location_of(storage: str | None, results_dir: Path) -> str:
    """The database URL: the one given, or SQLite inside the results folder."""
    if storage:
        return storage
    return f"sqlite:///{Path(results_dir) / 'results.sqlite'}"


def describe(url: str) -> str:
    """A URL for messages: no password."""
    try:
        return sa.engine.make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL; say what was given
        return url


class StoreUnreachable(UserError):
    """The database server does not answer (down, restarting, network): worth a retry."""


def with_driver(url: str) -> str:
    """`postgresql://` names no driver, and SQLAlchemy 2.1 assumes psycopg 3: take the
    PostgreSQL driver that is installed (psycopg, else psycopg2), so a plain URL works."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        return url  # reported by _engine
    if parsed.drivername not in ("postgresql", "postgres"):
        return url
    import importlib.util

    driver = next((d for d in ("psycopg", "psycopg2") if importlib.util.find_spec(d)), "psycopg")
    return parsed.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


class Store:
    """Results, models and claims in one database; Optuna's trials beside them."""

    def __init__(self, url: str, readonly: bool = False):
        """`readonly`: the command only reads (leaderboard, predict, report): SQLite is
        opened read-only, so a results folder on a read-only medium can still be read."""
        self.url = with_driver(url)
        self.readonly = readonly or _unwritable_sqlite(self.url)
        readonly = self.readonly
        self.engine = _engine(self.url, readonly)
        if not (readonly and self.engine.dialect.name == "sqlite"):  # a reader creates nothing
            self._guard(lambda: self._creating_tables(lambda: _meta.create_all(self.engine)))
            if not readonly:
                self._guard(lambda: self._creating_tables(lambda: _add_checksum_column(self.engine)))

    # ------------------------------------------------------------------ optuna
    def optuna_storage(self, prepared: bool = False):
        """Optuna's RDB storage on the same database (its own tables).

        `prepared`: the run has already created these tables and checked their schema
        (it calls this once without), so a study's worker opens them without alembic.
        Tables made by an earlier run are checked by Optuna (its schema version), new
        ones are created without alembic (optuna_tables.create_tables)."""
        kwargs = {"connect_args": {"timeout": 60}} if self.url.startswith("sqlite") else {"pool_pre_ping": True}
        from harness.services import optuna_tables

        if prepared:
            return self._guard(lambda: optuna_tables.PreparedRDBStorage(self.url, engine_kwargs=kwargs))
        if not self._guard(lambda: optuna_tables.has_tables(self.engine)):  # a new store: nothing to check
            return self._guard(
                lambda: self._creating_tables(lambda: optuna_tables.create_tables(self.url, engine_kwargs=kwargs))
            )
        import optuna

        return self._guard(
            lambda: self._creating_tables(lambda: optuna.storages.RDBStorage(self.url, engine_kwargs=kwargs))
        )

    def _creating_tables(self, create):
        """Runs that create the tables at once: on SQLite the loser retries; PostgreSQL
        fails concurrent CREATE TABLEs on its catalogue, so there they take turns."""
        if self.engine.dialect.name != "postgresql":
            return _retry_once(create)
        with self.engine.connect() as lock:
            lock.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": _SCHEMA_LOCK})
            try:
                return create()
            finally:
                lock.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": _SCHEMA_LOCK})

    # ------------------------------------------------------------------ results
    def done_keys(self, keys: list[str] | None = None) -> set[str]:
        """Keys with a readable result: a damaged row is not done, so it is recomputed."""
        with self._connect() as db:
            return _readable(db, keys, write=not self.readonly)

    def add(self, result: UnitResult, model: tuple[str, bytes] | None = None) -> bool:
        """Write a finished study once; False if its key was already there (the first stays).

        A database server that stops answering is retried for RECONNECT_SECONDS: a study
        that took hours is not thrown away because the server restarted as it finished."""
        deadline = time.monotonic() + RECONNECT_SECONDS
        while True:
            try:
                return self._add(result, model)
            except StoreUnreachable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1.0)

    def _add(self, result: UnitResult, model: tuple[str, bytes] | None) -> bool:
        row = asdict(result)
        body = {k: row.pop(k) for k in list(row) if k not in _COLUMNS}
        row["body"] = json.dumps(body, default=_json_default, allow_nan=True)
        row["checksum"] = _checksum(row)
        with self._connect() as db:
            _drop_if_damaged(db, result.key)  # a damaged row of this key is replaced
            inserted = db.execute(_insert_ignore(self.engine, RESULTS, row)).rowcount == 1
            if inserted and model is not None:
                db.execute(
                    _insert_ignore(self.engine, MODELS, {"key": result.key, "format": model[0], "blob": model[1]})
                )
            db.execute(CLAIMS.delete().where(CLAIMS.c.key == result.key))
        return inserted

    def results(self, keys: set[str] | None = None, include_superseded: bool = False) -> Iterator[UnitResult]:
        """Results in the order they finished; only `keys` when given (selected by the database)."""
        q = sa.select(*_stored_columns(self.engine))
        if not include_superseded:
            q = q.where(RESULTS.c.superseded == sa.false())
        with self._connect() as db:
            rows = [dict(r._mapping) for part in _by_keys(q, keys) for r in db.execute(part)]
        rows.sort(key=lambda row: (_number(row["finished"]), str(row["key"])))
        for row in rows:
            parsed = _parse(row)
            if not isinstance(parsed, str):  # a damaged row is skipped, with one warning line
                yield parsed

    def count_superseded(self) -> int:
        with self._connect() as db:
            return db.execute(sa.select(sa.func.count()).where(RESULTS.c.superseded == sa.true())).scalar_one()

    def supersede(self, units: dict[str, str]) -> int:
        """Mark results of these units (unit -> current key) whose key differs as superseded."""
        n = 0
        with self._connect() as db:
            for unit, key in units.items():
                n += db.execute(
                    RESULTS.update()
                    .where(RESULTS.c.unit == unit, RESULTS.c.key != key, RESULTS.c.superseded == sa.false())
                    .values(superseded=True)
                ).rowcount
        return n

    def drop_models(self, keys: set[str]) -> int:
        """Delete the stored models of these studies (their results stay)."""
        ordered, n = sorted(keys), 0
        with self._connect() as db:
            for i in range(0, len(ordered), 500):
                n += db.execute(MODELS.delete().where(MODELS.c.key.in_(ordered[i : i + 500]))).rowcount
        return n

    def model(self, key: str) -> tuple[str, bytes] | None:
        with self._connect() as db:
            row = db.execute(sa.select(MODELS.c.format, MODELS.c.blob).where(MODELS.c.key == key)).first()
        return (row[0], bytes(row[1])) if row else None

    # ------------------------------------------------------------------ claims
    def claim(self, key: str, owner: str, ttl: float = CLAIM_TTL) -> bool:
        """Claim a study for `owner`; take it over when its owner's heartbeat expired.

        False when it is done or held by a live owner. Compare-and-swap on the old
        heartbeat, so two drivers taking over the same dead claim cannot both win."""
        now = time.time()
        with self._connect() as db:
            if _readable(db, [key]):
                return False
            if (
                db.execute(_insert_ignore(self.engine, CLAIMS, {"key": key, "owner": owner, "heartbeat": now})).rowcount
                == 1
            ):
                return True
            row = db.execute(sa.select(CLAIMS.c.owner, CLAIMS.c.heartbeat).where(CLAIMS.c.key == key)).first()
            if row is None:
                return False
            if row[0] == owner:
                return True
            if now - row[1] <= ttl:
                return False
            return (
                db.execute(
                    CLAIMS.update()
                    .where(CLAIMS.c.key == key, CLAIMS.c.owner == row[0], CLAIMS.c.heartbeat == row[1])
                    .values(owner=owner, heartbeat=now)
                ).rowcount
                == 1
            )

    def taken_over(self, key: str, owner: str) -> bool:
        """Another run finished this study, or holds its claim: `owner` stalled past its
        claim's time-to-live (SIGSTOP, a frozen machine) and lost it."""
        with self._connect() as db:
            row = db.execute(sa.select(CLAIMS.c.owner).where(CLAIMS.c.key == key)).first()
        return (row is not None and row[0] != owner) or key in self.done_keys([key])

    def heartbeat(self, owner: str) -> None:
        with self._connect() as db:
            db.execute(CLAIMS.update().where(CLAIMS.c.owner == owner).values(heartbeat=time.time()))

    def release(self, key: str, owner: str) -> None:
        with self._connect() as db:
            db.execute(CLAIMS.delete().where(CLAIMS.c.key == key, CLAIMS.c.owner == owner))

    def claims(self) -> dict[str, tuple[str, float]]:
        with self._connect() as db:
            return {r[0]: (r[1], r[2]) for r in db.execute(sa.select(CLAIMS))}

    # ------------------------------------------------------------------ plumbing
    def _connect(self):
        return _Guarded(self)

    def _guard(self, fn):
        try:
            return fn()
        except sa.exc.DatabaseError as exc:
            _raise_for_user(self.url, exc)


class _Guarded:
    """`with store._connect() as db:` a transaction whose database errors are user errors."""

    def __init__(self, store: Store):
        self.store = store

    def __enter__(self):
        try:
            self._ctx = self.store.engine.begin()
            return self._ctx.__enter__()
        except sa.exc.DatabaseError as exc:
            _raise_for_user(self.store.url, exc)

    def __exit__(self, exc_type, exc, tb):
        try:
            self._ctx.__exit__(exc_type, exc, tb)  # commit, or roll back on an exception
        except sa.exc.DatabaseError as err:
            _raise_for_user(self.store.url, err)
        if isinstance(exc, sa.exc.DatabaseError):
            _raise_for_user(self.store.url, exc)
        return False


def _raise_for_user(url: str, exc: sa.exc.DatabaseError) -> None:
    """A database failure as the one line it means for the user (server unreachable, file
    damaged); integrity errors are races or bugs and go up as they are."""
    if isinstance(exc, sa.exc.IntegrityError):
        raise exc
    if isinstance(exc, sa.exc.OperationalError):
        raise _connection_error(url, exc) from None
    raise UserError(_damage_message(url, exc)) from None


_warned: set[str] = set()  # damaged rows already reported by this process


def _parse(row: dict[str, Any]) -> UnitResult | str:
    """The row as a UnitResult, or why it is damaged (a body that is not JSON, a field of
    the wrong type), warned about once per process: it counts as not done."""
    import pydantic

    row = dict(row)
    floats = {"value", "valid_value", "fit_seconds", "finished"}  # SQL stores NaN as NULL
    for name in [k for k, v in row.items() if v is None and k != "body"]:
        if name in floats:
            row[name] = float("nan")
        else:  # a NULL column takes the record's default; a required one is then missing
            del row[name]
    try:
        body = json.loads(row.pop("body", None) or "{}")
        if not isinstance(body, dict):
            raise TypeError(f"body is a JSON {type(body).__name__}, not an object")
        known = {f.name for f in fields(UnitResult)}
        merged = {k: v for k, v in {**row, **body}.items() if k in known}
        result = _adapter().validate_python(merged)
    except (ValueError, TypeError, RecursionError, pydantic.ValidationError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if isinstance(exc, pydantic.ValidationError):
            err = exc.errors()[0]
            why = f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
        key = str(row.get("key"))
        if key not in _warned:  # one line per row and process
            _warned.add(key)
            log.warning(
                "result row %s (key %s) is damaged (%s); ignored, and recomputed by the next run",
                row.get("unit"),
                key[:12],
                why,
            )
        return why
    return result


_ADAPTER: list = []


def _adapter():
    """A pydantic validator of the result record (built once: it costs milliseconds)."""
    import pydantic

    if not _ADAPTER:
        _ADAPTER.append(pydantic.TypeAdapter(UnitResult))
    return _ADAPTER[0]


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return 0.0


def _drop_if_damaged(db, key: str) -> None:
    present = db.execute(sa.select(RESULTS.c.key).where(RESULTS.c.key == key)).first() is not None
    if present and not _readable(db, [key]):
        db.execute(RESULTS.delete().where(RESULTS.c.key == key))
        db.execute(MODELS.delete().where(MODELS.c.key == key))


def _readable(db, keys: list[str] | None, write: bool = True) -> set[str]:
    """Keys (all, or of `keys`) whose row is readable: it matches the checksum written
    with it (hashing a body costs ~1 ms; parsing and validating it ~30 ms at 5,500 test
    materials), or, without one or not matching it, `_parse` reads it; such a row then
    gets its checksum (`write`), so it is parsed once."""
    columns = _stored_columns(db)
    has_checksum = any(c.name == "checksum" for c in columns)
    rows = [dict(r._mapping) for q in _by_keys(sa.select(*columns), keys) for r in db.execute(q)]
    readable = set()
    for row in rows:
        if has_checksum and row["checksum"] is not None and row["checksum"] == _checksum(row):
            readable.add(row["key"])
        elif not isinstance(_parse(row), str):
            readable.add(row["key"])
            if write and has_checksum:
                db.execute(RESULTS.update().where(RESULTS.c.key == row["key"]).values(checksum=_checksum(row)))
    return readable


def _checksum(row: dict[str, Any]) -> str:
    """sha256 of a result row's columns (as SQL gives them back: NaN as NULL) and body;
    `superseded` is left out, as it changes after the row is written."""
    import hashlib

    cols = {k: _as_stored(RESULTS.c[k].type, v) for k, v in row.items() if k in _COLUMNS and k != "superseded"}
    head = json.dumps(sorted(cols.items()), default=_json_default, allow_nan=True)
    return hashlib.sha256(head.encode() + b"\0" + (row.get("body") or "").encode()).hexdigest()


def _as_stored(kind: sa.types.TypeEngine, value: Any) -> Any:
    """A column's value as the database gives it back (a NaN float is NULL)."""
    if value is None:
        return None
    if isinstance(kind, sa.Float):
        return None if float(value) != float(value) else float(value)
    if isinstance(kind, sa.Integer):
        return int(value)
    return value


def _stored_columns(bind) -> list[sa.Column]:
    """The results table's columns this database has: a store written before the checksum
    column and opened read-only (nothing may be added) lacks it."""
    engine = bind if isinstance(bind, sa.Engine) else bind.engine
    if engine not in _HAS_CHECKSUM:
        _HAS_CHECKSUM[engine] = any(c["name"] == "checksum" for c in sa.inspect(bind).get_columns("harness_results"))
    return [c for c in RESULTS.columns if c.name != "checksum" or _HAS_CHECKSUM[engine]]


_HAS_CHECKSUM: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _add_checksum_column(engine: sa.Engine) -> None:
    """The schema migration older stores get on open: the nullable checksum column."""
    if any(c["name"] == "checksum" for c in sa.inspect(engine).get_columns("harness_results")):
        return
    try:
        with engine.begin() as db:
            db.execute(sa.text("ALTER TABLE harness_results ADD COLUMN checksum VARCHAR(64)"))
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:  # another run added it first
        if "duplicate column" not in str(exc) and "already exists" not in str(exc):
            raise
    _HAS_CHECKSUM.pop(engine, None)


def _by_keys(query, keys, size: int = 500) -> list:
    """`query` as is, or restricted to `keys` in batches (databases cap bound parameters)."""
    if keys is None:
        return [query]
    keys = sorted(keys)
    return [query.where(RESULTS.c.key.in_(keys[i : i + size])) for i in range(0, len(keys), size)]


def _retry_once(fn):
    """Two runs creating the same tables at once: the loser finds them made and goes on."""
    try:
        return fn()
    except (sa.exc.OperationalError, sa.exc.IntegrityError) as exc:
        if isinstance(exc, sa.exc.OperationalError) and "already exists" not in str(exc):
            raise
        time.sleep(0.5)  # e.g. both inserted Optuna's version row: the other one won
        return fn()


def _engine(url: str, readonly: bool = False) -> sa.Engine:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise UserError(
            f"storage {url!r} is not a database URL; give e.g. postgresql://user@host:5432/db "
            "or leave it out for SQLite in the results folder"
        ) from None
    if parsed.get_backend_name() == "sqlite" and readonly and parsed.database:
        return sa.create_engine(_readonly_url(parsed.database), connect_args={"timeout": 60})
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 60})

        @sa.event.listens_for(engine, "connect")
        def _wal(dbapi_conn, _record):  # readers and one writer at a time, across processes
            dbapi_conn.execute("PRAGMA journal_mode=WAL")
            dbapi_conn.execute("PRAGMA busy_timeout=60000")

        return engine
    try:
        return sa.create_engine(url, pool_pre_ping=True)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise UserError(
            f"storage {describe(url)}: driver missing ({exc}); install it, e.g. pip install psycopg2-binary"
        ) from None


def _unwritable_sqlite(url: str) -> bool:
    """An existing SQLite store this process cannot write (read-only medium or folder):
    opened read-only, so that reading it works; a write then fails with one line."""
    try:
        parsed = sa.engine.make_url(url)
        if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database.startswith("file:"):
            return False
        path = Path(parsed.database)
        return path.is_file() and not (os.access(path, os.W_OK) and os.access(path.parent, os.W_OK))
    except (sa.exc.ArgumentError, OSError, ValueError):
        return False


def _readonly_url(path: str) -> str:
    """SQLite opened read-only: `mode=ro` reads a WAL database beside live writers; in a
    folder nobody can write (no -wal/-shm can exist or be made) `immutable=1` reads it."""
    from urllib.parse import quote

    p = Path(path).resolve()
    frozen = not os.access(p.parent, os.W_OK) and not Path(f"{p}-wal").exists()
    return f"sqlite:///file:{quote(str(p))}?mode=ro{'&immutable=1' if frozen else ''}&uri=true"


def _insert_ignore(engine: sa.Engine, table: sa.Table, row: dict[str, Any]):
    """INSERT that leaves an existing row alone: the first writer of a key wins."""
    if engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(table).values(**row).on_conflict_do_nothing(index_elements=["key"])


def _connection_error(url: str, exc: Exception) -> UserError:
    message = _connection_message(url, exc)
    if sa.engine.make_url(url).get_backend_name() == "sqlite" or "does not exist" in message:
        return UserError(message)
    return StoreUnreachable(message)


def _connection_message(url: str, exc: Exception) -> str:
    u = sa.engine.make_url(url)
    cause = (
        str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        if str(getattr(exc, "orig", exc)).strip()
        else type(exc).__name__
    )
    if u.get_backend_name() == "sqlite":
        if "not a database" in cause or "malformed" in cause:
            return _damage_message(url, exc)
        return (
            f"cannot open results store {u.database}: {cause}; check that the results folder is "
            "writable, or choose another with --results"
        )
    where = f"host {u.host or 'localhost'}, port {u.port or 'default'}, database {u.database!r}"
    if "does not exist" in cause:
        fix = f"create it (createdb -h {u.host or 'localhost'} -p {u.port or 5432} -U {u.username or 'postgres'} {u.database})"
    elif "password" in cause or "authentication" in cause:
        fix = "check the user and password in the URL (or ~/.pgpass)"
    else:
        fix = "check that the server runs there and accepts TCP connections, and that the URL is right"
    return f"cannot reach the results database {u.get_backend_name()} at {where} ({cause}); {fix}"


def _damage_message(url: str, exc: Exception) -> str:
    u = sa.engine.make_url(url)
    cause = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    if u.get_backend_name() != "sqlite":
        return (
            f"results database {describe(url)} refused a query ({cause}); if its harness_* or Optuna "
            "tables were made by another program or version, give a fresh database with --storage"
        )
    where = u.database
    return (
        f"results store {where} is damaged ({cause}); move it aside (e.g. mv {where} {where}.damaged) "
        "and rerun: finished studies in it cannot be read, the rest is recomputed"
    )


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)
