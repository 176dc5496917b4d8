"""Grid fan-out: N processes started with the same command and ``--storage <Optuna RDB URL>`` run one grid.

The grid is an Optuna study in that storage (PostgreSQL for a cluster; the heartbeat, the grace
period and the retry of stale trials are Optuna's, opened by :func:`emd.sweep.storage.open_storage`).
Every unit of work is one enqueued trial named by its ``emd.cell`` user attribute:

- the references (``vanilla``), claimed first, by one worker; their arm is kept in the study's user
  attributes, so every worker compares against the same reference without recomputing it;
- one trial per grid cell (``medical/subtle`` ...);
- ``collect``: claimable only once every reference and cell is COMPLETE; whoever claims it (the
  worker that finishes last) logs the parent run's table and plots (:mod:`emd.grid_collect`).

A trial is claimed by flipping it from WAITING to RUNNING (:meth:`RDBStorage.set_trial_state_values`
does that under ``SELECT ... FOR UPDATE`` and refuses a trial that is no longer WAITING), so each one
runs in exactly one process. The claimer records a heartbeat every ``heartbeat_s``; a trial whose
heartbeat is older than ``stale_after_s`` is failed by the next worker that looks and enqueued again,
and its MLflow run marked FAILED, so a killed worker's cell is rerun by another. A worker waits, with
no give-up timeout, while trials of others are RUNNING (they may still go stale and need it).

The first process creates the study (the database's unique study name decides which) and the MLflow
parent run; every worker reopens that parent, so cells are nested runs under it exactly as in the
single-process run.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from .errors import ConfigError, EmdError

A_CELL, A_KIND, A_RUN, A_WORKER, A_FAIL = "emd.cell", "emd.kind", "emd.mlflow_run_id", "emd.worker", "emd.fail_reason"
S_PARENT, S_EXPERIMENT, S_READY, S_CELLS = "emd.parent_run_id", "emd.experiment", "emd.ready", "emd.cells"
S_REF = "emd.reference."  # + name -> the reference arm (Arm.to_json)
COLLECT = "collect"
STALE = "stale: its process stopped sending heartbeats (killed or hung)"


class IncompleteGridError(EmdError):
    """Some cells of the grid failed with an error and no worker can finish them (exit 3)."""

    exit_code = 3


class _ReferenceLost(Exception):
    """The reference a cell waits for lost its worker and is queued again: release the cell, take it."""


@dataclass
class GridWork:
    """What an entry hands the grid: its cells, how to run one, and its references.

    ``run_cell(cell, reference)`` runs one cell inside the nested run the grid opens for it and returns
    its metrics; ``reference(name)`` gives a reference's arm (waiting while another worker computes it).
    ``references[name]()`` computes a reference's arm (the grid logs it as its own nested run).
    """

    cells: list[str]
    run_cell: Callable[[str, Callable[[str], Any]], dict]
    references: dict[str, Callable[[], Any]] = field(default_factory=dict)
    cell_tags: Callable[[str], dict] = lambda cell: {}
    cell_params: Callable[[str], dict] = lambda cell: {}
    # Cells other cells read (the interaction grid's ratio-0 cells are its controls): ``needs(cell)``
    # names them; once such a cell ran, ``product(cell)`` (JSON) is kept in the study and ``reference``
    # gives ``decode(name, product)`` to the cells that need it. References decode to their Arm.
    needs: Callable[[str], list[str]] = lambda cell: []
    product: Callable[[str], Any] = lambda cell: None
    decode: Callable[[str, Any], Any] | None = None
    # The parent's table and plots once every cell is done: (tracker, experiment, parent id, log) -> None;
    # None: :func:`emd.grid_collect.collect`.
    collect: Callable[..., Any] | None = None


def worker_id() -> str:
    """``<host>:<pid>``: who ran a trial (a trial attribute and a run tag)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def study_name(entry: str, key: str, names: list[str]) -> str:
    """``emd-<entry>-<grid key>-<digest of the cells>``: the same command joins the same study."""
    from .storage import digest

    return f"emd-{entry}-{key[:16]}-{digest(sorted(names))[:8]}"


class GridWorker:
    """One worker of a grid (see the module doc); :meth:`run` returns when the grid is done."""

    def __init__(self, ctx, url: str, key: str, work: GridWork, *, heartbeat_s: float = 10.0,
                 stale_after_s: float = 120.0, poll_s: float = 2.0):
        from .sweep.storage import open_storage

        if not url.startswith(("postgresql", "mysql", "sqlite")):
            raise ConfigError(f"storage={url!r}; allowed: an Optuna RDB URL (postgresql://user@host/db, "
                              "sqlite:///path.db); grid workers need its heartbeat")
        if stale_after_s <= 2 * heartbeat_s:
            raise ConfigError(f"grid_stale_after_s={stale_after_s} must exceed twice grid_heartbeat_s={heartbeat_s}; "
                              "allowed: a grace period longer than two heartbeats")
        self.ctx, self.url, self.key, self.work = ctx, url, key, work
        self.heartbeat_s, self.poll_s = heartbeat_s, poll_s
        self.names = [*work.references, *work.cells]
        self.name = study_name(ctx.entry, key, self.names)
        self.storage = open_storage(url, heartbeat_s=heartbeat_s, stale_after_s=stale_after_s, on_stale=self._on_stale)
        self.me = worker_id()
        self.ran: list[str] = []  # what this process ran (references and cells)

    # ------------------------------------------------------------------ the study
    def _open(self, run_name: str, tags: dict) -> tuple[str, bool]:
        """Create (first process) or join the study; returns (parent run id, created here)."""
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            self.study = optuna.create_study(study_name=self.name, storage=self.storage, load_if_exists=False)
        except optuna.exceptions.DuplicatedStudyError:
            self.study = optuna.load_study(study_name=self.name, storage=self.storage)
            return self._wait_ready(), False
        with self.ctx.run(run_name, tags={**tags, "emd.grid_study": self.name, "emd.grid_role": "parent",
                                           "emd.grid_cells": ",".join(self.work.cells)}):
            parent = self.ctx.run_id
        self.study.set_user_attr(S_PARENT, parent)
        self.study.set_user_attr(S_EXPERIMENT, self.ctx.experiment)
        self.study.set_user_attr(S_CELLS, self.names)
        for name in self.names + [COLLECT]:
            kind = "reference" if name in self.work.references else COLLECT if name == COLLECT else "cell"
            self.study.enqueue_trial({}, user_attrs={A_CELL: name, A_KIND: kind})
        self.study.set_user_attr(S_READY, True)
        return parent, True

    def _wait_ready(self) -> str:
        t0 = time.time()
        while not (ua := self.study.user_attrs).get(S_READY):
            if time.time() - t0 > 60 and int(time.time() - t0) % 60 < self.poll_s:
                self.ctx.log(f"grid: waiting for the first worker to enqueue study {self.name!r}")
            time.sleep(self.poll_s)
        return ua[S_PARENT]

    def _trials(self):
        return self.study.get_trials(deepcopy=False)

    def _states(self) -> dict[str, set]:
        out: dict[str, set] = {n: set() for n in [*self.names, COLLECT]}
        for t in self._trials():
            out.setdefault(t.user_attrs.get(A_CELL, ""), set()).add(t.state)
        return out

    def _fail_stale(self) -> None:
        from .sweep.storage import fail_stale

        fail_stale(self.study)

    def _on_stale(self, trial) -> None:
        self.ctx.log(f"grid: {trial.user_attrs.get(A_CELL)} (trial {trial.number}, worker "
                     f"{trial.user_attrs.get(A_WORKER)}) lost its process: marked FAIL, queued again")
        if run_id := trial.user_attrs.get(A_RUN):
            with contextlib.suppress(Exception):
                self.ctx.tracker.set_terminated(run_id, "FAILED")

    def _trial_id(self, number: int) -> int:
        return self.storage.get_trial_id_from_study_id_trial_number(self.study._study_id, number)

    def _claim(self, names: list[str]):
        """Atomically take the first WAITING trial among ``names`` (in that order); None if none."""
        from optuna.trial import TrialState

        trials = self._trials()
        complete = {t.user_attrs.get(A_CELL) for t in trials if t.state == TrialState.COMPLETE}
        waiting = [t for t in trials if t.state == TrialState.WAITING and t.user_attrs.get(A_CELL) in names]
        # references first, then cells whose needed cells are done (a worker waits only when nothing else is free)
        ready = lambda n: n not in self.work.cells or set(self.work.needs(n)) <= complete  # noqa: E731
        waiting.sort(key=lambda t: (t.user_attrs[A_CELL] not in self.work.references, not ready(t.user_attrs[A_CELL]),
                                    names.index(t.user_attrs[A_CELL]), t.number))
        for t in waiting:
            tid = self._trial_id(t.number)
            with contextlib.suppress(Exception):  # another process finished or took it meanwhile
                if self.storage.set_trial_state_values(tid, TrialState.RUNNING):
                    self.storage.record_heartbeat(tid)
                    self.storage.set_trial_user_attr(tid, A_WORKER, self.me)
                    self.storage.set_trial_user_attr(tid, A_FAIL, STALE)
                    return tid, t.user_attrs[A_CELL]
        return None

    @contextlib.contextmanager
    def _heartbeat(self, tid: int):
        stop = threading.Event()

        def beat():
            while not stop.wait(self.heartbeat_s):
                with contextlib.suppress(Exception):  # a missed beat is what the grace period allows for
                    self.storage.record_heartbeat(tid)

        th = threading.Thread(target=beat, name=f"emd-grid-heartbeat-{tid}", daemon=True)
        th.start()
        try:
            yield
        finally:
            stop.set()
            th.join()

    def _finish(self, tid: int, state, reason: str | None = None) -> None:
        from optuna.trial import TrialState

        self.storage.set_trial_user_attr(tid, A_FAIL, reason)
        self.storage.set_trial_state_values(tid, state, [0.0] if state == TrialState.COMPLETE else None)

    # ------------------------------------------------------------------ references
    def reference(self, name: str):
        """The arm of reference ``name``: from the study, waiting while its worker computes it."""
        from optuna.trial import TrialState

        from .pipeline import Arm

        while True:
            ua = self.study.user_attrs
            if S_REF + name in ua:
                if self.work.decode is not None and name not in self.work.references:
                    return self.work.decode(name, ua[S_REF + name])
                return Arm.from_json(ua[S_REF + name])
            self._fail_stale()
            states = self._states()[name]
            if TrialState.RUNNING in states or TrialState.COMPLETE in states:
                time.sleep(self.poll_s)
            elif TrialState.WAITING in states:
                raise _ReferenceLost(name)
            else:
                raise EmdError(f"reference {name} of study {self.name!r} failed with an error (see its FAIL trial)")

    def _run_reference(self, tid: int, name: str) -> None:
        arm = self.work.references[name]()
        with self.ctx.nested(name, tags={"emd.cell": name, "emd.grid_reference": "1", "emd.worker": self.me}) as r:
            self.storage.set_trial_user_attr(tid, A_RUN, r.info.run_id)
            self.ctx.log_arm(arm)
        self.study.set_user_attr(S_REF + name, arm.to_json())

    def _run_cell(self, tid: int, cell: str) -> None:
        tags = {"emd.cell": cell, "emd.worker": self.me, **self.work.cell_tags(cell)}
        with self.ctx.nested(cell, tags=tags, params=self.work.cell_params(cell)) as r:
            self.storage.set_trial_user_attr(tid, A_RUN, r.info.run_id)
            self.work.run_cell(cell, self.reference)
        if any(cell in self.work.needs(c) for c in self.work.cells):  # kept before the trial is COMPLETE
            self.study.set_user_attr(S_REF + cell, self.work.product(cell))

    def _release(self, tid: int, cell: str, ref: str) -> None:
        from optuna.trial import TrialState

        self.ctx.log(f"grid: {ref}, which {cell} needs, is not computed yet or lost its worker; releasing "
                     f"{cell} to compute it first")
        self._finish(tid, TrialState.FAIL, f"released: reference {ref} had to be recomputed")
        self.study.enqueue_trial({}, user_attrs={A_CELL: cell, A_KIND: "cell"})

    # ------------------------------------------------------------------ the loop
    def run(self, run_name: str, tags: dict) -> dict[str, Any]:
        """Join the grid and work until it is complete; returns what this worker did and the parent id."""
        from optuna.trial import TrialState

        from .grid_collect import collect

        t0 = time.perf_counter()
        parent, created = self._open(run_name, tags)
        self.ctx.log(f"grid: study {self.name!r} ({len(self.work.cells)} cells, references "
                     f"{', '.join(self.work.references) or 'none'}); worker {self.me}"
                     + (" created it" if created else " joined") + f"; parent run {parent}")
        collected = False
        with self.ctx.run(run_name, run_id=parent, log_config=False):
            while True:
                self._fail_stale()
                states = self._states()
                done = {n for n, s in states.items() if TrialState.COMPLETE in s}
                if COLLECT in done:
                    break
                if all(n in done for n in self.names):
                    if (got := self._claim([COLLECT])) is None:
                        time.sleep(self.poll_s)  # another worker collects; wait in case it dies
                        continue
                    tid, _ = got
                    with self._heartbeat(tid):
                        (self.work.collect or collect)(self.ctx.tracker, self.ctx.experiment, parent,
                                                       log=self.ctx.log, active=True)
                    self._finish(tid, TrialState.COMPLETE)
                    collected = True
                    break
                got = self._claim([*self.work.references, *self.work.cells])
                if got is None:
                    live = any(s & {TrialState.RUNNING, TrialState.WAITING} for n, s in states.items() if n in self.names)
                    if not live:
                        failed = sorted(n for n in self.names if n not in done)
                        raise IncompleteGridError(f"grid {self.name!r}: {', '.join(failed)} failed with an error and "
                                                  "no trial of them is left; fix the cause and rerun the same command")
                    time.sleep(self.poll_s)
                    continue
                tid, name = got
                self.ctx.log(f"grid: {self.me} runs {name}")
                try:
                    with self._heartbeat(tid):
                        if name in self.work.references:
                            self._run_reference(tid, name)
                        else:
                            self._run_cell(tid, name)
                except _ReferenceLost as e:
                    self._release(tid, name, str(e))
                    continue
                except BaseException as e:
                    with contextlib.suppress(Exception):
                        self._finish(tid, TrialState.FAIL, f"error: {type(e).__name__}: {e}"[:2000])
                    raise
                self._finish(tid, TrialState.COMPLETE)
                self.ran.append(name)
        return {"parent_run_id": parent, "study": self.name, "ran_here": list(self.ran), "collected": collected,
                "created": created, "seconds": time.perf_counter() - t0}
