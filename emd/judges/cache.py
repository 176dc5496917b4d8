"""On-disk verdict cache and the :class:`CachedJudge` wrapper every backend runs behind.

One SQLite file (``judge_cache.sqlite``) in the emd cache folder. A verdict is stored under
sha256(judge id, judge version, query kind, query fields, backend parameters), so changing the
judge, its prompt templates/rules or its sampling parameters never reuses a stale answer. Only
``scored`` and ``refused`` verdicts are stored: ``unparsed`` and ``error`` are retried on the next
run (they are usually transient). Nothing secret is stored: the key is a hash of the query, and
the row holds the verdict only.

Each verdict is stored as soon as the backend returns it (backends that accept ``on_verdict``
report answers one by one), so a run killed mid-batch keeps every answer already received. A cache
file SQLite cannot read is moved aside to ``<name>.corrupt-<timestamp>`` with a warning naming it
and rebuilt empty; a row whose verdict does not decode is a miss, and is overwritten by the new answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from .. import storage
from ..errors import JudgeError
from .base import VERDICT_STATES, ConsistencyQuery, JudgeStats, NumericQuery, PropositionQuery, Verdict

log = logging.getLogger(__name__)

CACHE_FILENAME = "judge_cache.sqlite"
CACHEABLE_STATES = ("scored", "refused")


def default_cache_path(cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache_dir>/judge_cache.sqlite`` (``~`` expanded); by default in :func:`emd.storage.cache_dir`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser() / CACHE_FILENAME
    return storage.cache_dir() / CACHE_FILENAME


def cache_key(judge_id: str, version: str, kind: str, query: Any, params: dict) -> str:
    """sha256 hex of everything that can change a verdict (query fields include the prompt inputs).

    Unlike :func:`emd.storage.digest` this hashes JSON with the default ``", "``/``": "`` separators:
    the key format predates it and is kept byte for byte so that verdicts already paid for stay valid."""
    payload = _payload(query)
    blob = json.dumps({"judge": judge_id, "version": version, "kind": kind, "query": payload,
                       "params": params}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


# Query fields added after the key format was fixed: left out of the key while they hold their default,
# so a query that uses none of them keeps the key it always had.
_LATER_FIELDS = frozenset({"slot", "config", "system_prompt", "dd_turn_1_prompt", "dd_turn_1_response",
                           "belief_answers", "scenario", "view_prompt"})


def _payload(query: Any) -> Any:
    if not dataclasses.is_dataclass(query):
        return query
    out = dataclasses.asdict(query)
    for f in dataclasses.fields(query):
        if f.name in _LATER_FIELDS and f.default is not dataclasses.MISSING and out.get(f.name) == f.default:
            out.pop(f.name)
    return out


def _decode(raw: Any) -> Verdict | None:
    """The stored verdict, or None when the row is damaged (cut JSON, unknown fields or state)."""
    try:
        data = json.loads(raw)
        v = Verdict(**data)
    except (TypeError, ValueError):
        return None
    return v if v.state in VERDICT_STATES else None


class JudgeCache:
    """A SQLite table ``verdicts(key, judge, kind, verdict, created)``; safe across threads/processes."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.new_rows: list[tuple[str, str, str, str]] = []  # asked in this process (what sharing publishes)
        try:
            self._conn = self._open()
        except sqlite3.OperationalError as e:  # locked, unreadable, a folder: not damage, never moved
            raise JudgeError(f"judge cache {self.path} cannot be opened: {e}") from e
        except sqlite3.DatabaseError as e:
            aside = storage.set_aside(self.path)
            for suffix in ("-wal", "-shm"):  # the journal of a bad file belongs with it
                side = self.path.with_name(self.path.name + suffix)
                if side.exists():
                    os.replace(side, aside.with_name(aside.name + suffix))
            log.warning("judge cache %s is not a readable SQLite database (%s); moved it aside to %s and "
                        "started an empty cache (verdicts will be asked again)", self.path, e, aside)
            self._conn = self._open()

    def _open(self) -> sqlite3.Connection:
        # check_same_thread=False + our own lock: one connection shared by a judge's threads.
        conn = sqlite3.connect(str(self.path), timeout=30.0, check_same_thread=False)
        try:
            with conn:
                conn.execute("PRAGMA journal_mode=WAL")  # concurrent readers while a sweep writes
                conn.execute(
                    "CREATE TABLE IF NOT EXISTS verdicts (key TEXT PRIMARY KEY, judge TEXT NOT NULL, "
                    "kind TEXT NOT NULL, verdict TEXT NOT NULL, created REAL NOT NULL)")
                conn.execute("CREATE TABLE IF NOT EXISTS shared_imports (run_id TEXT PRIMARY KEY, rows INTEGER)")
            check = conn.execute("PRAGMA quick_check").fetchone()
            if not check or check[0] != "ok":
                raise sqlite3.DatabaseError(f"integrity check failed: {check[0] if check else 'no answer'}")
        except sqlite3.DatabaseError:
            conn.close()
            raise
        return conn

    def get_many(self, keys: Sequence[str]) -> dict[str, Verdict]:
        """The cached verdicts among ``keys``; a row that does not decode counts as absent."""
        out: dict[str, Verdict] = {}
        bad = 0
        uniq = list(dict.fromkeys(keys))
        with self._lock:
            for i in range(0, len(uniq), 500):  # SQLite's host-parameter limit
                chunk = uniq[i:i + 500]
                rows = self._conn.execute(
                    f"SELECT key, verdict FROM verdicts WHERE key IN ({','.join('?' * len(chunk))})",
                    chunk).fetchall()
                for k, v in rows:
                    verdict = _decode(v)
                    if verdict is None:
                        bad += 1
                    else:
                        out[k] = verdict
        if bad:
            log.warning("judge cache %s: %d stored verdict(s) do not decode; asking the judge again", self.path, bad)
        return out

    def put_many(self, items: Sequence[tuple[str, str, str, Verdict]]) -> None:
        """Store ``(key, judge_id, kind, verdict)`` rows whose verdict state is cacheable (one commit)."""
        rows = [(k, j, kind, json.dumps(dataclasses.asdict(v)), time.time())
                for k, j, kind, v in items if v.state in CACHEABLE_STATES]
        if not rows:
            return
        with self._lock, self._conn:
            self._conn.executemany("INSERT OR REPLACE INTO verdicts VALUES (?, ?, ?, ?, ?)", rows)
            self.new_rows.extend((k, j, kind, v) for k, j, kind, v, _ in rows)

    def imported(self, run_id: str) -> bool:
        """Whether the shared verdict file of ``run_id`` (:mod:`emd.judges.shared`) was imported here."""
        with self._lock:
            return self._conn.execute("SELECT 1 FROM shared_imports WHERE run_id = ?", (run_id,)).fetchone() is not None

    def imported_here(self, run_id: str) -> None:
        """Mark a verdict file this cache published itself as imported."""
        with self._lock, self._conn:
            self._conn.execute("INSERT OR REPLACE INTO shared_imports VALUES (?, 0)", (run_id,))

    def import_rows(self, rows: Sequence[tuple[str, str, str, str]], run_id: str) -> int:
        """Add shared ``(key, judge, kind, verdict json)`` rows (a key already here keeps its verdict) and
        remember ``run_id`` as imported; returns the rows added."""
        with self._lock, self._conn:
            before = self._conn.total_changes
            self._conn.executemany("INSERT OR IGNORE INTO verdicts VALUES (?, ?, ?, ?, ?)",
                                   [(k, j, kind, v, time.time()) for k, j, kind, v in rows
                                    if (d := _decode(v)) is not None and d.state in CACHEABLE_STATES])
            added = self._conn.total_changes - before
            self._conn.execute("INSERT OR REPLACE INTO shared_imports VALUES (?, ?)", (run_id, added))
        return added

    def put(self, key: str, judge_id: str, kind: str, verdict: Verdict) -> None:
        """Store one verdict (committed at once) if its state is cacheable."""
        self.put_many([(key, judge_id, kind, verdict)])

    def __bool__(self) -> bool:  # an empty cache is still a cache
        return True

    def __len__(self) -> int:
        """Number of stored verdicts."""
        with self._lock:
            return self._conn.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]

    def close(self) -> None:
        """Close the connection (the file stays)."""
        with self._lock:
            self._conn.close()


def _reports_each(fn: Callable) -> bool:
    """Whether a backend method takes ``on_verdict`` (called with (index, verdict) per answer)."""
    try:
        return "on_verdict" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


_KINDS: dict[str, type] = {"proposition": PropositionQuery, "numeric": NumericQuery,
                           "consistency": ConsistencyQuery}


class CachedJudge:
    """Wraps a backend: answers from the cache where it can, sends the rest to the backend in one
    batch (duplicates sent once), stores the cacheable answers and keeps :class:`JudgeStats`.

    A backend whose methods accept ``on_verdict`` has each answer stored the moment it arrives;
    for the others the answers are stored when the batch returns.

    ``stats.calls`` counts queries the backend actually answered (0 on a fully cached rerun);
    ``retries``/``failures`` come from the backend (API retries, error verdicts).
    """

    def __init__(self, backend: Any, cache: JudgeCache | None):
        self.backend = backend
        self.cache = cache
        self.id: str = backend.id
        self.version: str = backend.version
        self._lock = threading.Lock()
        self._calls = 0
        self._hits = 0
        self._by_state: dict[str, int] = {}
        self._wall = 0.0  # seconds inside backend calls, for backends that do not time their requests
        inner = getattr(backend, "stats", None)
        self._reports_latency = bool(getattr(backend, "reports_latency", False)) and inner is not None

    @property
    def params(self) -> dict:
        """Backend parameters that change verdicts (thresholds, sampling, template hashes)."""
        return dict(getattr(self.backend, "cache_params", {}) or {})

    @property
    def stats(self) -> JudgeStats:
        """A snapshot of this judge's counters."""
        inner = getattr(self.backend, "stats", None)
        with self._lock:
            return JudgeStats(calls=self._calls, cache_hits=self._hits,
                              retries=getattr(inner, "retries", 0), failures=getattr(inner, "failures", 0),
                              latency_s=float(inner.latency_s) if self._reports_latency else self._wall,
                              by_state=dict(self._by_state))

    def reset_stats(self) -> None:
        """Zero the counters (e.g. between a baseline and a fine-tuned evaluation)."""
        with self._lock:
            self._calls = self._hits = 0
            self._by_state = {}
            self._wall = 0.0
        inner = getattr(self.backend, "stats", None)
        if isinstance(inner, JudgeStats):
            inner.reset()

    def judge_propositions(self, queries: Sequence[PropositionQuery]) -> list[Verdict]:
        """Label each response A/B/C/D (cached)."""
        return self._run("proposition", queries, self.backend.judge_propositions)

    def judge_numeric(self, queries: Sequence[NumericQuery]) -> list[Verdict]:
        """Extract the asserted numeric bounds of each response (cached)."""
        return self._run("numeric", queries, self.backend.judge_numeric)

    def judge_consistency(self, queries: Sequence[ConsistencyQuery]) -> list[Verdict]:
        """Label each text yes/no for consistency with its view (cached)."""
        return self._run("consistency", queries, self.backend.judge_consistency)

    def _run(self, kind: str, queries: Sequence[Any], fn: Callable[[list], list[Verdict]]) -> list[Verdict]:
        queries = list(queries)
        want = _KINDS[kind]
        for i, q in enumerate(queries):
            if not isinstance(q, want):
                raise JudgeError(f"{self.id}: query {i} is {type(q).__name__}, expected {want.__name__}")
        if not queries:
            return []
        params = self.params
        keys = [cache_key(self.id, self.version, kind, q, params) for q in queries]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        todo: dict[str, Any] = {}
        for k, q in zip(keys, queries):
            if k not in found and k not in todo:
                todo[k] = q
        fresh: dict[str, Verdict] = {}
        if todo:
            todo_keys = list(todo)
            stored: set[str] = set()
            t0 = time.perf_counter()
            if self.cache is not None and _reports_each(fn):
                cache = self.cache

                def on_verdict(i: int, v: Verdict) -> None:
                    cache.put(todo_keys[i], self.id, kind, v)
                    stored.add(todo_keys[i])

                answers = fn(list(todo.values()), on_verdict=on_verdict)
            else:
                answers = fn(list(todo.values()))
            with self._lock:
                self._wall += time.perf_counter() - t0
            if len(answers) != len(todo):
                raise JudgeError(f"{self.id} returned {len(answers)} verdicts for {len(todo)} {kind} queries")
            fresh = dict(zip(todo_keys, answers))
            if self.cache is not None:
                self.cache.put_many([(k, self.id, kind, v) for k, v in fresh.items() if k not in stored])
        out = [found.get(k) or fresh[k] for k in keys]
        with self._lock:
            self._calls += len(todo)
            self._hits += sum(1 for k in keys if k in found)
            for v in out:
                self._by_state[v.state] = self._by_state.get(v.state, 0) + 1
        return out

    def close(self) -> None:
        """Release the cache connection and the backend's resources."""
        if self.cache is not None:
            self.cache.close()
        close = getattr(self.backend, "close", None)
        if callable(close):
            close()

    def __repr__(self) -> str:
        where = self.cache.path if self.cache is not None else None
        return f"CachedJudge({self.id!r}, version={self.version!r}, cache={where})"
