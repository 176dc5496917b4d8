"""The study runner: plan from the outcomes in storage, enqueue the planned points, let Optuna run one
queued trial at a time (``Study.optimize``: heartbeat, stale-trial failing and retry are Optuna's, see
:mod:`emd.sweep.storage`), repeat; then conclude, log and register in MLflow."""

from __future__ import annotations

import contextlib
import math
import os
import time
from typing import Any, Callable

from ..config import SweepConfig, to_flat_dict, to_yaml
from ..errors import ConfigError, EmdError
from .conclusion import finalize
from .objective import Problem
from .outcome import Outcome, judge_outcome
from .study import (A_ADAPTER, A_FAIL, A_METRICS, A_RATIO, A_RUN, A_SCORES, A_SEED, S_CONTENT, S_DIGEST, S_EXPERIMENT,
                    S_PARENT, S_READY, S_REF, STALE_REASON, SweepResult, content_digest, default_study_name, point_of,
                    study_content)
from .storage import default_storage, fail_stale, has_heartbeat, open_storage, redact
from .strategy import conclude, next_ratios, ratio_key

class StudyRunner:
    """Runs (or joins) one study: plan from the outcomes in storage, enqueue, run a queued trial, repeat.

    ``heartbeat_s`` and ``stale_after_s`` are the storage's heartbeat interval and grace period (see
    :func:`~emd.sweep.storage.open_storage`); ``max_errors`` failures with an error at one point stop
    the sweep.
    """

    def __init__(self, cfg: SweepConfig, problem: Problem, tracker=None, *, poll_s: float = 2.0,
                 heartbeat_s: float = 10.0, stale_after_s: float | None = 60.0, join_timeout_s: float = 600.0,
                 max_errors: int = 3, log: Callable[[str], None] = print):
        import optuna

        from ..tracking import Tracker

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial from us is enough
        self.cfg, self.problem, self.log = cfg, problem, log
        self.tracker = tracker or Tracker(cfg.common.tracking_uri)
        self.poll_s, self.heartbeat_s, self.stale_after_s = poll_s, heartbeat_s, stale_after_s
        self.join_timeout_s, self.max_errors = join_timeout_s, max_errors
        sw = cfg.sweep
        if problem.metric != sw.metric:
            raise ConfigError(f"problem metric {problem.metric!r} differs from metric={sw.metric!r}")
        self.grid = [ratio_key(r) for r in sw.ratio_list]
        self.seeds = sw.seed_list
        self.url = sw.storage or default_storage()
        self.content = study_content(cfg, problem)
        self.digest = content_digest(self.content)
        self.study_name = sw.study_name or default_study_name(cfg, self.content)
        self.experiment = cfg.common.experiment or "emd-sweep"
        self.ran_here = 0
        self.ref_metrics: dict[int, dict[str, float]] = {}  # every metric of the reference arm, per seed

    # ------------------------------------------------------------------ study and references
    def _open_study(self):
        import optuna

        self.storage = open_storage(self.url, heartbeat_s=self.heartbeat_s, stale_after_s=self.stale_after_s,
                                    on_stale=self._on_stale)
        if not has_heartbeat(self.storage):
            self.log("sweep: this storage has no heartbeat (journal): a trial whose process is killed stays RUNNING")
        sampler = optuna.samplers.RandomSampler(seed=self.cfg.common.seed)  # every point comes from the queue
        if self.cfg.sweep.worker:
            deadline = time.time() + self.join_timeout_s
            while True:
                try:
                    study = optuna.load_study(study_name=self.study_name, storage=self.storage, sampler=sampler)
                    if all(a in study.user_attrs for a in (S_PARENT, S_DIGEST, S_READY)):
                        break
                except KeyError:
                    pass
                if time.time() > deadline:
                    raise EmdError(f"--worker: study {self.study_name!r} did not appear in {redact(self.url)} within "
                                   f"{self.join_timeout_s:.0f} s; start the main sweep (without --worker) first")
                time.sleep(self.poll_s)
        else:
            study = optuna.create_study(study_name=self.study_name, storage=self.storage, load_if_exists=True,
                                        direction="maximize", sampler=sampler)
        have = study.user_attrs.get(S_DIGEST)
        if have is None:
            study.set_user_attr(S_CONTENT, self.content)
            study.set_user_attr(S_DIGEST, self.digest)
        elif have != self.digest:
            old = study.user_attrs.get(S_CONTENT, {}).get("config", {})
            diff = sorted(k for k in set(old) | set(self.content["config"])
                          if old.get(k) != self.content["config"].get(k))
            raise ConfigError(f"study {self.study_name!r} in {redact(self.url)} was created with other settings "
                              f"(differing: {', '.join(diff) or 'problem'}); allowed: the same settings, or a new "
                              "study_name")
        self.study = study
        return study

    def _references(self, compute: bool) -> dict[int, dict[str, float]]:
        """Reference scores per seed, computed once per study and kept in its user attributes."""
        kind = self.cfg.sweep.reference
        out: dict[int, dict[str, float]] = {}
        deadline = time.time() + self.join_timeout_s
        for seed in self.seeds:
            attr = f"{S_REF}.{kind}.{seed}"
            while attr not in (ua := self.study.user_attrs):
                if compute:
                    self.log(f"sweep: computing the {kind} reference (seed {seed}), once for this study")
                    ref = self.problem.reference(kind, seed)
                    self.study.set_user_attr(attr, {"scores": ref.scores, "metrics": ref.metrics})
                    continue
                if time.time() > deadline:
                    raise EmdError(f"--worker: the {kind} reference for seed {seed} did not appear within "
                                   f"{self.join_timeout_s:.0f} s")
                time.sleep(self.poll_s)
            out[seed] = {str(k): float(v) for k, v in ua[attr]["scores"].items()}
            self.ref_metrics[seed] = dict(ua[attr].get("metrics", {}))
        return out

    # ------------------------------------------------------------------ reading the storage
    def trials(self, states=None):
        """The study's trials (not copied: read only)."""
        return self.study.get_trials(deepcopy=False, states=states)

    def completed(self) -> dict[tuple[float, int], Any]:
        """(ratio, seed) -> its COMPLETE trial with scores (the lowest number when there are several)."""
        from optuna.trial import TrialState

        done: dict[tuple[float, int], Any] = {}
        for t in self.trials((TrialState.COMPLETE,)):
            pt = point_of(t)
            if pt is not None and A_SCORES in t.user_attrs and (pt not in done or t.number < done[pt].number):
                done[pt] = t
        return done

    def outcomes(self, refs: dict[int, dict[str, float]]) -> dict[float, Outcome]:
        """Outcome of every ratio whose seeds are all complete (any ratio, not only this grid's)."""
        by_ratio: dict[float, dict[int, Any]] = {}
        for (r, s), t in self.completed().items():
            if s in self.seeds:
                by_ratio.setdefault(r, {})[s] = t
        return {r: judge_outcome(r, [per_seed[s].user_attrs[A_SCORES] for s in self.seeds],
                                 [refs[s] for s in self.seeds], self.cfg.sweep.drop, self.cfg.sweep.metric,
                                 seed=self.cfg.common.seed)
                for r, per_seed in sorted(by_ratio.items()) if set(per_seed) == set(self.seeds)}

    # ------------------------------------------------------------------ recovery
    def _on_stale(self, trial) -> None:
        """Optuna failed ``trial`` for a missing heartbeat (its point is enqueued again): its MLflow run too."""
        pt = point_of(trial) or (float("nan"), -1)
        self.log(f"sweep: trial {trial.number} (ratio={pt[0]:g} seed={pt[1]}) lost its process mid-trial: "
                 "marked FAIL, it will run again")
        if run_id := trial.user_attrs.get(A_RUN):
            with contextlib.suppress(Exception):
                self.tracker.set_terminated(run_id, "FAILED")

    def _fail_stale(self) -> None:
        fail_stale(self.study)

    def _fail_dangling_runs(self, parent_id: str) -> int:
        """Nested MLflow runs still RUNNING whose trial is not running anymore (its process died before
        the trial recorded the run id) are marked FAILED."""
        from optuna.trial import TrialState

        live = {str(t.number) for t in self.trials((TrialState.RUNNING,))}
        df = self.tracker.search_runs(self.experiment,
                                      filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and "
                                                    "attributes.status = 'RUNNING'")
        n = 0
        for _, row in df.iterrows():
            if str(row.get("tags.emd.trial_number")) not in live:
                self.tracker.set_terminated(row["run_id"], "FAILED")
                n += 1
        if n:
            self.log(f"sweep: marked {n} dangling trial run(s) FAILED")
        return n

    # ------------------------------------------------------------------ planning and one trial
    def _enqueue_missing(self, needed: list[tuple[float, int]]) -> None:
        from optuna.trial import TrialState

        # Not enqueue_trial(skip_if_exists=True): that also skips a point whose only trials FAILed or
        # were pruned, and it is no more atomic than this check (two planners may both enqueue; the
        # objective prunes the later trial of a point).
        pending = {point_of(t) for t in self.trials((TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE))}
        for r, s in needed:
            if (r, s) not in pending:
                self.study.enqueue_trial({"ratio": r, "seed": s}, user_attrs={
                    A_RATIO: r, A_SEED: s, "emd.strategy": self.cfg.sweep.strategy, "emd.enqueued_by": os.getpid()})

    def _is_duplicate(self, number: int, pt: tuple[float, int]) -> bool:
        """Another trial of the same point finished, or runs/waits with a lower number (it wins)."""
        from optuna.trial import TrialState

        return any(t.number != number and point_of(t) == pt and (
            t.state == TrialState.COMPLETE or (t.state in (TrialState.RUNNING, TrialState.WAITING)
                                               and t.number < number)) for t in self.trials())

    def _objective(self, trial, parent_id: str, refs: dict[int, dict[str, float]],
                   needed: set[tuple[float, int]]) -> float:
        """Optuna's objective: one queued point, logged as a nested MLflow run."""
        import optuna
        from optuna.trial import TrialState

        pt = point_of(trial)
        if pt is None:  # the queue emptied between our look and Optuna's pop: Optuna made a fresh trial
            raise optuna.TrialPruned("no queued point was left to run")
        if pt not in needed or self._is_duplicate(trial.number, pt):
            trial.set_user_attr(A_FAIL, "duplicate or no longer planned")
            self.log(f"sweep: trial {trial.number} (ratio={pt[0]:g} seed={pt[1]}) is a duplicate or no longer "
                     "planned: pruned")
            raise optuna.TrialPruned("duplicate or no longer planned")
        trial.set_user_attr(A_FAIL, STALE_REASON)
        ratio = ratio_key(trial.suggest_float("ratio", 0.0, 1.0))
        seed = trial.suggest_int("seed", 0, 2**31 - 1)
        metric, ref_kind = self.cfg.sweep.metric, self.cfg.sweep.reference
        t0 = time.perf_counter()
        self.log(f"sweep: trial {trial.number}: ratio={ratio:g} seed={seed} (pid {os.getpid()})")
        try:
            tags = {"mlflow.parentRunId": parent_id, "emd.entry": "sweep-trial", "emd.trial_number": trial.number,
                    "emd.study_name": self.study_name, "emd.ratio": ratio, "emd.base_model": self.cfg.model.model}
            with self.tracker.run(self.experiment, run_name=f"trial {trial.number} ratio={ratio:g} seed={seed}",
                                  nested=True, tags={k: str(v) for k, v in tags.items()}) as run:
                trial.set_user_attr(A_RUN, run.info.run_id)
                self.tracker.log_params({"trial_number": trial.number, "ratio": ratio, "seed": seed,
                                         "metric": metric, "study_name": self.study_name})
                out = self.problem.objective(ratio, seed)
                one = judge_outcome(ratio, [out.scores], [refs[seed]], self.cfg.sweep.drop, metric,
                                    seed=self.cfg.common.seed)
                metrics = dict(out.metrics)
                # the reference's metrics beside the trial's, as emd mixture logs them (reports read both)
                metrics.update({f"{ref_kind}/{k}": v for k, v in self.ref_metrics.get(seed, {}).items()})
                metrics.update({metric: one.value, f"{metric}_ci_low": one.value_ci_low,
                                f"{metric}_ci_high": one.value_ci_high,
                                f"{ref_kind}/{metric}": one.reference,
                                f"delta/{metric}/vs_{ref_kind}": one.delta,
                                f"delta/{metric}/vs_{ref_kind}_ci_low": one.delta_ci_low,
                                f"delta/{metric}/vs_{ref_kind}_ci_high": one.delta_ci_high,
                                "sweep/rel_change": one.rel_change if math.isfinite(one.rel_change) else None,
                                "sweep/triggered": float(one.triggered),
                                "sweep/trial_seconds": time.perf_counter() - t0})
                self.tracker.log_metrics(metrics)
                if out.tags:
                    self.tracker.set_tags(out.tags)
                for name, rows in out.tables.items():
                    self.tracker.log_table(rows, name)
                for name, obj in out.dicts.items():
                    self.tracker.log_dict(obj, name)
                if out.adapter_dir:
                    self.tracker.log_artifacts(out.adapter_dir, "adapter")
                trial.set_user_attr(A_SCORES, out.scores)
                trial.set_user_attr(A_ADAPTER, bool(out.adapter_dir))
                trial.set_user_attr(A_METRICS, {metric: one.value, "delta": one.delta,
                                                "triggered_alone": one.triggered})
                trial.set_user_attr(A_FAIL, None)
        except BaseException as e:
            with contextlib.suppress(Exception):
                trial.set_user_attr(A_FAIL, f"error: {type(e).__name__}: {e}"[:2000])
                if not isinstance(e, (Exception, KeyboardInterrupt)):  # SystemExit: Optuna would not tell
                    self.study.tell(trial, state=TrialState.FAIL)
            raise
        self.ran_here += 1
        self.log(f"sweep: trial {trial.number} done: {metric}={one.value:.2f} vs {ref_kind} {one.reference:.2f} "
                 f"(delta {one.delta:+.2f} [{one.delta_ci_low:+.2f}, {one.delta_ci_high:+.2f}]) "
                 f"in {time.perf_counter() - t0:.1f} s")
        return one.value

    def _mark_ready(self) -> None:
        # Workers wait for this: had they planned at the same moment as the main process's first plan,
        # both would enqueue the same points (harmless, pruned, but wasteful).
        if not self.study.user_attrs.get(S_READY):
            self.study.set_user_attr(S_READY, True)

    def _prune_leftovers(self) -> int:
        """WAITING trials of points that are already complete (duplicate enqueues, retries of a trial
        another process finished) are pruned, so the study ends with no trial left waiting."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        done = set(self.completed())
        study_id = self.storage.get_study_id_from_name(self.study_name)
        n = 0
        for t in self.trials((TrialState.WAITING,)):
            if point_of(t) in done:
                trial_id = self.storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
                with contextlib.suppress(UpdateFinishedTrialError):  # another process took it meanwhile
                    n += bool(self.storage.set_trial_state_values(trial_id, TrialState.PRUNED))
        return n

    def _check_error_budget(self, needed: set[tuple[float, int]]) -> None:
        from optuna.trial import TrialState

        errors: dict[tuple[float, int], int] = {}
        for t in self.trials((TrialState.FAIL,)):
            if str(t.user_attrs.get(A_FAIL) or "").startswith("error:"):
                pt = point_of(t)
                errors[pt] = errors.get(pt, 0) + 1
        for pt in needed:
            if errors.get(pt, 0) >= self.max_errors:
                raise EmdError(f"point ratio={pt[0]:g} seed={pt[1]} failed {errors[pt]} times with an error "
                               f"(see the FAIL trials of study {self.study_name!r}); fix the cause and rerun")

    def _loop(self, parent_id: str, refs: dict[int, dict[str, float]]) -> None:
        from optuna.trial import TrialState

        strategy = self.cfg.sweep.strategy
        while True:
            self._fail_stale()
            known = {r: o.triggered for r, o in self.outcomes(refs).items()}
            plan = next_ratios(strategy, self.grid, known)
            if not plan:
                if not self.cfg.sweep.worker:
                    self._prune_leftovers()
                    self._mark_ready()
                return
            done = set(self.completed())
            needed = [(r, s) for r in plan for s in self.seeds if (r, s) not in done]
            self._check_error_budget(set(needed))
            self._enqueue_missing(needed)
            if not self.cfg.sweep.worker:
                self._mark_ready()
            if not any(point_of(t) in set(needed) for t in self.trials((TrialState.WAITING,))):
                time.sleep(self.poll_s)  # the needed points run in other processes
                continue
            self.study.optimize(lambda trial: self._objective(trial, parent_id, refs, set(needed)), n_trials=1,
                                catch=(), gc_after_trial=False)

    # ------------------------------------------------------------------ entry
    def run(self) -> SweepResult:
        """Run the study to its conclusion (main process) or help until the plan is done (``--worker``)."""
        t0 = time.perf_counter()
        study = self._open_study()
        worker = self.cfg.sweep.worker
        sw = self.cfg.sweep
        self.log(f"sweep: study {self.study_name!r} in {redact(self.url)}; strategy={sw.strategy} grid="
                 f"{','.join(f'{r:g}' for r in self.grid)} seeds={sw.seeds} metric={sw.metric} drop={sw.drop} "
                 f"reference={sw.reference}" + (" (worker)" if worker else ""))
        if worker:
            parent_id = study.user_attrs[S_PARENT]
            self.experiment = study.user_attrs.get(S_EXPERIMENT, self.experiment)
            refs = self._references(compute=False)
            self._loop(parent_id, refs)
            return self._result(None, {}, parent_id, None, t0)
        parent_id = study.user_attrs.get(S_PARENT)
        if parent_id:
            try:
                self.tracker.get_run(parent_id)
            except Exception:
                self.log(f"sweep: parent run {parent_id} is not in this tracking store; opening a new one")
                parent_id = None
        tags = self.tracker.standard_tags("sweep", self.cfg.model.model,
                                          extra={"emd.study_name": self.study_name, "emd.storage": redact(self.url),
                                                 "emd.sweep.role": "parent", "emd.strategy": sw.strategy})
        with self.tracker.run(self.experiment, run_name=f"sweep {self.study_name}", run_id=parent_id,
                              tags=tags) as run:
            if parent_id is None:
                parent_id = run.info.run_id
                study.set_user_attr(S_PARENT, parent_id)
                study.set_user_attr(S_EXPERIMENT, self.experiment)
                params = to_flat_dict(self.cfg)
                params["storage"] = redact(self.url)
                params["study_name"] = self.study_name
                self.tracker.log_params(params)
                self.tracker.log_text(to_yaml(self.cfg), "config.yaml")
            else:
                self.log(f"sweep: resuming; parent MLflow run {parent_id}")
                self._fail_stale()
                self._fail_dangling_runs(parent_id)
            self.tracker.log_dict(self.content, "study_content.json")
            refs = self._references(compute=True)
            self._loop(parent_id, refs)
            outcomes = self.outcomes(refs)
            known = {r: o.triggered for r, o in outcomes.items()}
            verdict = conclude(self.grid, {r: v for r, v in known.items() if r in set(self.grid)})
            version = finalize(self, parent_id, verdict, outcomes, refs)
        return self._result(verdict, outcomes, parent_id, version, t0)

    def counts(self) -> tuple[int, int, int]:
        """COMPLETE, FAIL and PRUNED trials of the study."""
        from optuna.trial import TrialState

        ts = self.trials()
        return (sum(t.state == TrialState.COMPLETE for t in ts), sum(t.state == TrialState.FAIL for t in ts),
                sum(t.state == TrialState.PRUNED for t in ts))

    def _result(self, verdict, outcomes, parent_id, version, t0) -> SweepResult:
        n_ok, n_fail, n_pruned = self.counts()
        return SweepResult(study_name=self.study_name, storage=redact(self.url), parent_run_id=parent_id,
                           experiment=self.experiment, verdict=verdict, outcomes=outcomes, n_finetunes=n_ok,
                           n_failed=n_fail, n_pruned=n_pruned, ran_here=self.ran_here, model_version=version,
                           registered_name=self.registered_name() if version else None, seconds=time.perf_counter() - t0)

    def registered_name(self) -> str:
        """The registry name of the threshold model: ``emd-<base>-mixture``."""
        from ..experiment import registry_name

        return registry_name(self.cfg.model.model, "mixture")
