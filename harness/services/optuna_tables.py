"""Optuna's RDB storage opened on tables the run has already set up.

`optuna.storages.RDBStorage` always stamps or reads the schema version through alembic,
and importing alembic brings mako and pygments: ~0.15 CPU s in every process that opens
the storage, more than a small study's own bookkeeping. The run creates the tables and
checks their schema once, in the main process (`Store.optuna_storage()`; a new store's
tables are created without the stamp, which Optuna adds when it next opens them itself);
a study's worker then opens them as they are. Everything after opening is Optuna's code.
"""

from __future__ import annotations

from typing import Any

import optuna
import sqlalchemy as sa
import sqlalchemy.orm as sa_orm


class PreparedRDBStorage(optuna.storages.RDBStorage):
    """`RDBStorage` minus table creation and the alembic version check (done by the run)."""

    def __init__(self, url: str, engine_kwargs: dict[str, Any] | None = None) -> None:
        # The attributes RDBStorage.__init__ sets, with its defaults; no heartbeat (the
        # harness fails a dead worker's RUNNING trials itself, through its claim).
        self.engine_kwargs = engine_kwargs or {}
        self.url = self._fill_storage_url_template(url)
        self.skip_compatibility_check = True
        self.heartbeat_interval = None
        self.grace_period = None
        self.heartbeat_stale_trial_callback = None
        self.failed_trial_callback = None
        self.engine = sa.create_engine(self.url, **self.engine_kwargs)
        self.scoped_session = sa_orm.scoped_session(sa_orm.sessionmaker(bind=self.engine))
        self._version_manager = None  # only Optuna's upgrade commands use it

    def __setstate__(self, state: dict[Any, Any]) -> None:
        self.__dict__.update(state)
        self.engine = sa.create_engine(self.url, **self.engine_kwargs)
        self.scoped_session = sa_orm.scoped_session(sa_orm.sessionmaker(bind=self.engine))


def has_tables(engine: sa.Engine) -> bool:
    """Whether Optuna has set up its tables in this database."""
    return sa.inspect(engine).has_table("studies")


def create_tables(url: str, engine_kwargs: dict[str, Any] | None = None) -> PreparedRDBStorage:
    """Optuna's tables in a database that has none, without alembic's version stamp.

    Optuna treats tables without a stamp as made "just now" by itself: the next full
    `RDBStorage` on them records its version and stamps its schema head, so a fresh
    store is as Optuna would have made it, and no process of this run imports alembic."""
    from optuna.storages._rdb import models

    storage = PreparedRDBStorage(url, engine_kwargs)
    models.BaseModel.metadata.create_all(storage.engine)
    return storage
