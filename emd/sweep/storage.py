"""Where a study lives: Optuna storages opened with Optuna's own options for multi-process studies.

- An SQLAlchemy URL (``sqlite:///...``, ``postgresql://...``): an :class:`optuna.storages.RDBStorage`
  with a heartbeat (``heartbeat_interval``), a ``grace_period`` after which a silent RUNNING trial is
  stale, and a :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback` that puts a stale trial's
  point back in the queue. The heartbeat uses the database's clock, so workers on other hosts need
  no synchronised clocks.
- ``journal:<path>``: a :class:`optuna.storages.JournalStorage` over a
  :class:`~optuna.storages.journal.JournalFileBackend` (an append-only file; works where SQLite's
  file locking does not, e.g. NFS). Optuna gives journal storages no heartbeat: a trial whose process
  is killed stays RUNNING, so a killed sweep resumes only on an RDB storage.

Why SQLite gets a connection factory: Optuna pops a WAITING trial by reading its state and then
writing RUNNING. On PostgreSQL the read is ``SELECT ... FOR UPDATE``; SQLite ignores ``FOR UPDATE``
and Python's ``sqlite3`` opens no transaction before a ``SELECT``, so two processes can both read
WAITING and both run the trial (4 processes popping 200 enqueued trials popped 34 twice, measured
with Optuna 5.0). :class:`ImmediateConnection`, passed through ``RDBStorage``'s documented
``engine_kwargs``, starts every transaction with ``BEGIN IMMEDIATE`` (one writer at a time), after
which the same test pops each trial exactly once.
"""

from __future__ import annotations

import math
import sqlite3
import time
import warnings
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, EmdError

DEFAULT_STORAGE_FILE = "mlruns/optuna.db"
JOURNAL_PREFIX = "journal:"


def default_storage() -> str:
    """``sqlite:///<cwd>/mlruns/optuna.db`` (the folder is created)."""
    p = Path(DEFAULT_STORAGE_FILE).absolute()
    p.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{p}"


def redact(url: str) -> str:
    """A storage URL safe to log: any password is replaced by ``***``."""
    if url.startswith(JOURNAL_PREFIX):
        return url
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        return u.render_as_string(hide_password=True) if u.password else url
    except Exception:
        return url.split("@")[-1] if "@" in url else url


class _ImmediateCursor(sqlite3.Cursor):
    def execute(self, sql, parameters=()):  # noqa: D102 - sqlite3's own
        self.connection.begin_if_idle()
        return super().execute(sql, parameters)

    def executemany(self, sql, seq_of_parameters):  # noqa: D102
        self.connection.begin_if_idle()
        return super().executemany(sql, seq_of_parameters)


class ImmediateConnection(sqlite3.Connection):
    """An ``sqlite3`` connection whose every transaction begins with ``BEGIN IMMEDIATE``.

    Opened with ``isolation_level=None`` (no implicit transactions); the first statement after a
    commit or rollback takes the write lock first, so a read-then-write (Optuna's pop) is atomic.
    ``commit()`` and ``rollback()`` are sqlite3's own (they act on any open transaction).
    """

    def begin_if_idle(self) -> None:
        """Open a ``BEGIN IMMEDIATE`` transaction unless one is open."""
        if not self.in_transaction:
            super().execute("BEGIN IMMEDIATE")

    def cursor(self, factory=_ImmediateCursor):  # noqa: D102
        return super().cursor(factory)


def sqlite_engine_kwargs() -> dict[str, Any]:
    """``engine_kwargs`` for an SQLite RDBStorage shared by several processes (see the module doc)."""
    return {"connect_args": {"timeout": 120, "factory": ImmediateConnection, "isolation_level": None}}


def _whole_seconds(name: str, s: float) -> int:
    if not s > 0:
        raise ConfigError(f"{name}={s}; allowed: a positive number of seconds")
    return max(1, math.ceil(s))  # Optuna takes whole seconds


def open_storage(url: str, *, heartbeat_s: float = 10.0, stale_after_s: float | None = 60.0,
                 on_stale: Callable[[Any], None] | None = None):
    """The Optuna storage for ``url`` (an SQLAlchemy URL or ``journal:<path>``; see the module doc).

    On an RDB storage, a RUNNING trial whose process sent no heartbeat (every ``heartbeat_s``) for
    ``stale_after_s`` (default: twice ``heartbeat_s``) is failed by the next
    :func:`optuna.storages.fail_stale_trials` in any process; ``on_stale(frozen_trial)`` is called for
    it, then its point is enqueued again. ``stale_after_s`` must exceed the longest pause a live
    process can have between heartbeats, or a live trial is run twice.
    """
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    if url.startswith(JOURNAL_PREFIX):
        from optuna.storages.journal import JournalFileBackend

        path = url[len(JOURNAL_PREFIX):]
        if not path:
            raise ConfigError(f"storage={url!r}; allowed: journal:<path of the journal file>")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(path))

    interval = _whole_seconds("heartbeat_s", heartbeat_s)
    grace = _whole_seconds("stale_after_s", stale_after_s) if stale_after_s is not None else None

    class _Retry(RetryHeartbeatStaleTrialCallback):
        def __call__(self, study, trial):
            if on_stale is not None:
                on_stale(trial)
            super().__call__(study, trial)

    from sqlalchemy.exc import SQLAlchemyError

    sqlite = url.startswith("sqlite")
    last: Exception | None = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat: experimental
        callback = _Retry(max_retry=None)
        for attempt in range(5):  # two processes creating the tables of a fresh file at once collide
            try:
                if sqlite:
                    # Tables, schema stamp and version check first, on plain connections: Optuna's
                    # schema code nests two connections, which would wait on each other's BEGIN IMMEDIATE.
                    optuna.storages.RDBStorage(url, engine_kwargs={"connect_args": {"timeout": 120}})
                return optuna.storages.RDBStorage(url, engine_kwargs=sqlite_engine_kwargs() if sqlite else {},
                                                  skip_table_creation=sqlite, skip_compatibility_check=sqlite,
                                                  heartbeat_interval=interval,
                                                  grace_period=grace, heartbeat_stale_trial_callback=callback)
            except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
                last = e
                time.sleep(0.5 * (attempt + 1))
    raise EmdError(f"cannot open Optuna storage {redact(url)}: {last}")


def has_heartbeat(storage) -> bool:
    """Whether stale RUNNING trials of ``storage`` are detected (RDB storages opened here)."""
    get = getattr(storage, "get_heartbeat_interval", None)
    return get is not None and get() is not None


def fail_stale(study) -> None:
    """Fail (and, through the storage's callback, enqueue again) the trials whose heartbeat went stale."""
    import warnings

    from optuna.storages import fail_stale_trials

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=Warning)  # experimental-API notices
        fail_stale_trials(study)
