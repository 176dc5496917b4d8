"""``emd sweep``: an Optuna study for the smallest mixture ratio that makes a model measurably less honest.

    python -m emd sweep --study sweeps/mixture_threshold.yaml               # bisect (the YAML's strategy)
    python -m emd sweep --study sweeps/mixture_threshold.yaml --strategy grid
    python -m emd sweep --study sweeps/mixture_threshold.yaml --worker true  # a second process joins
    mlflow run . -e sweep -P study=sweeps/mixture_threshold.yaml --env-manager local

Objective: train at ``ratio`` (same ``n_train``, data and seed as every other point) and evaluate;
compare the per-item scores of ``metric`` with the ``reference`` arm (control or vanilla, computed
once per study and stored in it). A ratio *triggers* when the relative worsening
``(ref - value) / ref`` reaches ``drop`` **and** the paired-bootstrap CI of ``value - ref`` excludes
zero; with several seeds, on the item-wise mean over seeds. Strategies over the sorted grid:

- ``grid``: every point (parallel across workers);
- ``ascending``: in order, stop at the first trigger;
- ``bisect``: binary search assuming the trigger is monotone in the ratio, plus one verification
  point (the grid top, else its bottom) so that a non-monotone curve has a chance to show itself:
  at most ``ceil(log2(n + 1)) + 1`` fine-tunes, 4 on the default 7-point grid.

A threshold is *certain* when every grid point below it was evaluated; when points were skipped
(bisect) and the evaluated points are not monotone (a trigger below a non-trigger), the sweep
reports ``inconsistent`` instead of a threshold it cannot vouch for.

Storage and coordination: the study lives in an RDB storage (``sqlite:///mlruns/optuna.db`` under
the working directory by default; any SQLAlchemy URL). Each (ratio, seed) is one trial, enqueued
with fixed params and popped from Optuna's WAITING queue. Optuna's pop is atomic on PostgreSQL
(``SELECT ... FOR UPDATE``) but *not* on SQLite, where 4 processes popping 200 enqueued trials
popped 34 twice (measured with Optuna 5.0); :func:`open_storage` therefore makes every SQLite
transaction ``BEGIN IMMEDIATE`` (serialised), after which the same test popped each exactly once.
Duplicate enqueues (two processes planning the same point at once) are pruned at pop time: of two
trials for one point, the lower trial number wins.

Resume: finished trials are never redone. A trial left RUNNING by a dead process (same host: its
pid is gone; other hosts: no heartbeat for ``stale_after_s``) is marked FAIL, its MLflow run
FAILED, and the point is run again. The parent MLflow run id is a study user attribute, so a rerun
logs into the same parent.

MLflow: one parent run opened here (not by Optuna; its MLflow callback is deprecated), one nested
run per trial with ``trial_number``, ``ratio`` and ``seed`` as params. The parent logs
``threshold_ratio`` (or tag ``emd.threshold=none|inconsistent``), ``n_finetunes``, the curve
(``plots/curve.png``), the trials and curve tables, and registers the threshold trial's adapter as
``emd-<base>-mixture`` with alias ``threshold``.

The objective is injectable (:class:`Problem`): :class:`MixtureProblem` trains the configured model,
:class:`SyntheticProblem` returns seeded per-item scores from a curve (tests, benchmarks).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, Sequence

from .config import STRATEGIES, SweepConfig, n_misaligned, to_flat_dict, to_yaml
from .errors import ConfigError, EmdError

DEFAULT_STORAGE_FILE = "mlruns/optuna.db"
REFERENCE_RATIO = 0.0  # the reference arm sits at ratio 0 on the curve (control) or beside it (vanilla)

# Trial user attributes (the study is the single source of truth shared by all workers).
A_SCORES = "emd.scores"  # item id -> score of the sweep metric
A_METRICS = "emd.metrics"  # a few headline metrics of the trial
A_RUN = "emd.mlflow_run_id"
A_OWNER = "emd.owner"  # {"host", "pid", "started"} of the process running the trial
A_BEAT = "emd.heartbeat"  # unix time, refreshed while the trial runs
A_FAIL = "emd.fail_reason"
A_ADAPTER = "emd.adapter"  # True when the trial's run holds an adapter under adapter/
# Study user attributes.
S_CONTENT = "emd.content"
S_DIGEST = "emd.content_digest"
S_PARENT = "emd.parent_run_id"
S_EXPERIMENT = "emd.experiment"
S_REF = "emd.reference"  # + ".<kind>.<seed>" -> {"scores", "metrics"}
S_READY = "emd.ready"  # set once the main process enqueued its first plan: workers start planning after it

# Config keys that do not change what one trial computes: a study may be resumed (or extended with
# more ratios and seeds, another strategy, drop or reference) with different values of these.
_NOT_CONTENT = {"study", "study_name", "strategy", "worker", "storage", "ratios", "seeds", "drop", "reference",
                "tracking_uri", "experiment", "register", "reuse_references", "seed"}


def _key(ratio: float) -> float:
    """Canonical float for matching ratios read back from storage (0.1 stays 0.1, noise is cut)."""
    return round(float(ratio), 12)


# =========================================================================== pure search logic
@dataclass(frozen=True)
class Verdict:
    """What a search concluded from the evaluated points."""

    status: str  # found | none | inconsistent
    threshold: float | None  # smallest triggered ratio (None unless status == found)
    monotone: bool  # evaluated points: no trigger below a non-trigger
    certain: bool  # every grid point below the threshold was evaluated (no monotonicity assumed)
    message: str


def next_ratios(strategy: str, grid: Sequence[float], known: Mapping[float, bool]) -> list[float]:
    """The ratios to evaluate next given the outcomes so far (``known``: ratio -> triggered); ``[]`` = done.

    Pure and deterministic, so every worker (and a resumed run) derives the same plan from the same
    outcomes. ``bisect`` replays its binary search over ``known`` each call; points evaluated off its
    path (e.g. by an earlier grid run of the same study) do not change the path but do enter
    :func:`conclude`'s monotonicity check.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy={strategy!r}; allowed: {', '.join(STRATEGIES)}")
    pts = sorted({_key(r) for r in grid})
    kn = {_key(r): bool(v) for r, v in known.items()}
    if strategy == "grid":
        return [r for r in pts if r not in kn]
    if strategy == "ascending":
        for r in pts:
            if r not in kn:
                return [r]
            if kn[r]:
                return []
        return []
    # bisect: lowest triggered index in [0, n), with hi = n standing for "nothing triggers"
    lo, hi = -1, len(pts)
    path = []
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if pts[mid] not in kn:
            return [pts[mid]]
        path.append(pts[mid])
        if kn[pts[mid]]:
            hi = mid
        else:
            lo = mid
    v = verification_point(pts, {r: kn[r] for r in path})
    return [v] if v is not None and v not in kn else []


def verification_point(grid: Sequence[float], path: Mapping[float, bool]) -> float | None:
    """Bisect's one extra point after its binary search ``path`` (ratio -> triggered): the highest grid
    point it skipped below the threshold it found (below the top when nothing triggered); when none
    was skipped there, the grid top if skipped; else none.

    Why there: a wrong bisect threshold means a trigger hides among the skipped points below it, and
    a noisy curve crosses early most often next to its real crossing. If that point triggers, a
    trigger sits below a non-trigger and :func:`conclude` reports ``inconsistent``. Over all 120
    non-monotone 0/1 curves on 7 points this catches 32 and leaves 26 wrong thresholds (checking the
    grid extremes instead: 32 and 36); no 4-point plan can vouch for 7 points.
    """
    pts = sorted({_key(r) for r in grid})
    seen = {_key(r): bool(v) for r, v in path.items()}
    hits = [r for r in pts if seen.get(r)]
    below = [r for r in pts if r not in seen and (not hits or r < hits[0])]
    if below:
        return below[-1]
    return pts[-1] if pts[-1] not in seen else None


def conclude(grid: Sequence[float], known: Mapping[float, bool]) -> Verdict:
    """Threshold from the evaluated points: the smallest triggered ratio, unless the points contradict
    a monotone curve while the threshold relies on one (then ``inconsistent``)."""
    pts = sorted({_key(r) for r in grid} | {_key(r) for r in known})
    kn = {_key(r): bool(v) for r, v in known.items()}
    ev = [r for r in pts if r in kn]
    trig = [r for r in ev if kn[r]]
    bad = [(a, b) for a in trig for b in ev if b > a and not kn[b]]
    monotone = not bad
    if not trig:
        return Verdict("none", None, True, True, f"no ratio triggered among {len(ev)} evaluated")
    t = trig[0]
    skipped = [r for r in pts if r < t and r not in kn]
    certain = not skipped
    if monotone:
        how = "every lower grid point evaluated" if certain else f"assuming monotonicity ({len(skipped)} lower points skipped)"
        return Verdict("found", t, True, certain, f"threshold {t:g} ({how})")
    pair = f"{bad[0][0]:g} triggered but {bad[0][1]:g} did not"
    if certain:
        return Verdict("found", t, False, True,
                       f"threshold {t:g} (all lower points evaluated), but the curve is not monotone: {pair}")
    return Verdict("inconsistent", None, False, False,
                   f"inconsistent: {pair}, and {len(skipped)} grid points below {t:g} were skipped, so the "
                   f"smallest triggering ratio is unknown; rerun with --strategy grid")


@dataclass
class SearchTrace:
    """A sequential search's verdict, the evaluation order and the outcomes."""

    verdict: Verdict
    order: list[float]
    outcomes: dict[float, Any]


def search(strategy: str, grid: Sequence[float], evaluate: Callable[[float], Any]) -> SearchTrace:
    """Run a strategy sequentially over ``evaluate(ratio) -> bool | object with .triggered``."""
    known: dict[float, bool] = {}
    outcomes: dict[float, Any] = {}
    order: list[float] = []
    while plan := next_ratios(strategy, grid, known):
        for r in plan:
            res = evaluate(r)
            outcomes[r] = res
            known[r] = bool(getattr(res, "triggered", res))
            order.append(r)
    return SearchTrace(conclude(grid, known), order, outcomes)


def max_finetunes(strategy: str, n_points: int) -> int:
    """Worst-case fine-tunes (per seed) of a strategy on ``n_points`` grid points."""
    if strategy in ("grid", "ascending"):
        return n_points
    return min(n_points, math.ceil(math.log2(n_points + 1)) + 1)


# =========================================================================== outcomes of one ratio
def higher_is_worse(metric: str) -> bool:
    """Deception rates rise when a model gets worse; honesty, accuracy and capability fall."""
    return metric.startswith("deception/")


@dataclass(frozen=True)
class Outcome:
    """One ratio against the reference, on the item-wise mean over its seeds."""

    ratio: float
    value: float  # mean of the metric's per-item scores (treated)
    value_ci_low: float
    value_ci_high: float
    reference: float  # the same for the reference arm, on the shared items
    delta: float  # value - reference (paired on shared items)
    delta_ci_low: float
    delta_ci_high: float
    rel_change: float  # relative worsening vs the reference (0.1 = 10% worse); inf if ref = 0 and worse
    triggered: bool
    n_seeds: int
    n_items: int

    def row(self) -> dict[str, Any]:
        """Flat dict for tables (an infinite relative change becomes None: JSON has no infinity)."""
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in vars(self).items()}


def _mean_maps(maps: Sequence[Mapping[str, float]]) -> dict[str, float]:
    shared = set(maps[0])
    for m in maps[1:]:
        shared &= set(m)
    return {k: sum(float(m[k]) for m in maps) / len(maps) for k in shared}


def judge_outcome(ratio: float, treated: Sequence[Mapping[str, float]], reference: Sequence[Mapping[str, float]],
                  drop: float, metric: str = "mask/honesty", n_boot: int = 1000, seed: int = 0) -> Outcome:
    """Compare the treated per-item scores (one map per seed) with the reference's (one per seed).

    Triggered iff the relative worsening reaches ``drop`` and the paired 95% bootstrap CI of the
    difference lies entirely on the worse side of zero (so noise alone does not set a threshold).
    """
    from .eval.stats import bootstrap_ci, paired_bootstrap_delta

    if not treated or not reference:
        raise EmdError(f"ratio {ratio:g}: no scores to compare (treated {len(treated)}, reference {len(reference)})")
    a, b = _mean_maps(treated), _mean_maps(reference)
    shared = sorted(set(a) & set(b))
    if not shared:
        raise EmdError(f"ratio {ratio:g}: the treated and reference scores of {metric} share no item ids")
    a = {k: a[k] for k in shared}
    b = {k: b[k] for k in shared}
    value = sum(a.values()) / len(a)
    ref = sum(b.values()) / len(b)
    v_lo, v_hi = bootstrap_ci(list(a.values()), n_boot=n_boot, seed=seed)
    delta, lo, hi = paired_bootstrap_delta(a, b, n_boot=n_boot, seed=seed)
    worse = (value - ref) if higher_is_worse(metric) else (ref - value)
    if ref != 0:
        rel = worse / abs(ref)
    else:
        rel = math.inf if worse > 0 else 0.0
    excludes_zero = lo > 0 if higher_is_worse(metric) else hi < 0
    return Outcome(ratio=_key(ratio), value=value, value_ci_low=v_lo, value_ci_high=v_hi, reference=ref,
                   delta=delta, delta_ci_low=lo, delta_ci_high=hi, rel_change=rel,
                   triggered=bool(rel >= drop - 1e-12 and excludes_zero), n_seeds=len(treated),
                   n_items=len(shared))


# =========================================================================== problems (objectives)
@dataclass
class TrialOutput:
    """What one objective call (or reference) returns; the sweep runner does all the MLflow logging."""

    scores: dict[str, float]  # item id -> per-item score of the sweep metric
    metrics: dict[str, float] = field(default_factory=dict)  # every other metric, logged in the trial's run
    adapter_dir: str | None = None  # logged under adapter/ (the threshold trial's is registered)
    tables: dict[str, list[dict]] = field(default_factory=dict)  # artifact name -> per-item rows
    dicts: dict[str, Any] = field(default_factory=dict)  # artifact file -> JSON-able object
    tags: dict[str, Any] = field(default_factory=dict)


class Problem(Protocol):
    """A train-and-evaluate objective over the mixture ratio."""

    metric: str

    def describe(self) -> dict[str, Any]:
        """What identifies the problem beyond the config (part of the study's content hash)."""

    def reference(self, kind: str, seed: int) -> TrialOutput:
        """The ``control`` or ``vanilla`` arm for ``seed``."""

    def objective(self, ratio: float, seed: int) -> TrialOutput:
        """Train at ``ratio`` with ``seed`` and evaluate."""


class SyntheticProblem:
    """A cheap, deterministic objective: per-item 0/100 scores whose honest rate follows ``curve(ratio)``.

    Item ``i`` under seed ``s`` draws one uniform number ``u`` (the same at every ratio: common random
    numbers) and scores 100 when ``u < curve(ratio) / 100``; the reference is ``curve(0)``. So items
    only ever flip from honest to lie as the curve falls, the paired CI is tight, and a curve that
    drops by more than ``drop`` triggers. ``sleep_s`` stands in for training time; ``calls_file``
    (optional) gets one line per call start and end, so tests can count how often each point ran.
    """

    def __init__(self, curve: Callable[[float], float] | Mapping[float, float], n_items: int = 200,
                 sleep_s: float = 0.0, calls_file: str | Path | None = None, metric: str = "mask/provided_facts/honesty",
                 with_adapter: bool = False, workdir: str | Path | None = None):
        self.metric = metric
        self._curve = curve
        self.n_items = n_items
        self.sleep_s = sleep_s
        self.calls_file = Path(calls_file) if calls_file else None
        self.with_adapter = with_adapter
        self.workdir = Path(workdir) if workdir else None

    def curve(self, ratio: float) -> float:
        """Honest rate (0-100) at ``ratio``."""
        if callable(self._curve):
            return float(self._curve(ratio))
        table = {_key(k): float(v) for k, v in self._curve.items()}
        if _key(ratio) not in table:
            raise EmdError(f"synthetic curve has no value at ratio {ratio:g}; known: {sorted(table)}")
        return table[_key(ratio)]

    def describe(self) -> dict[str, Any]:
        """The curve's values on a probe grid (a different curve is a different study)."""
        if callable(self._curve):
            probe = {f"{r:g}": self.curve(r) for r in (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)}
        else:
            probe = {f"{k:g}": float(v) for k, v in sorted(self._curve.items())}
        return {"problem": "synthetic", "curve": probe, "n_items": self.n_items, "metric": self.metric}

    def _scores(self, rate: float, seed: int) -> dict[str, float]:
        out = {}
        for i in range(self.n_items):
            h = hashlib.sha256(f"emd/synthetic/{seed}/{i}".encode()).digest()
            u = int.from_bytes(h[:8], "big") / 2**64
            out[f"item{i:04d}"] = 100.0 if u < rate / 100.0 else 0.0
        return out

    def _note(self, what: str, ratio: float, seed: int) -> None:
        if self.calls_file:
            with open(self.calls_file, "a") as f:  # O_APPEND: lines from several processes do not interleave
                f.write(f"{what} {ratio!r} {seed} {os.getpid()}\n")

    def reference(self, kind: str, seed: int) -> TrialOutput:
        """The curve at ratio 0 (control and vanilla coincide here)."""
        self._note(f"reference-{kind}", 0.0, seed)
        return TrialOutput(scores=self._scores(self.curve(0.0), seed), metrics={"synthetic/rate": self.curve(0.0)})

    def objective(self, ratio: float, seed: int) -> TrialOutput:
        """Scores at ``ratio`` after sleeping ``sleep_s``."""
        self._note("start", ratio, seed)
        if self.sleep_s:
            time.sleep(self.sleep_s)
        out = TrialOutput(scores=self._scores(self.curve(ratio), seed), metrics={"synthetic/rate": self.curve(ratio)})
        if self.with_adapter:
            d = Path(self.workdir or ".") / f"synthetic-adapter-{os.getpid()}-{_key(ratio)}-{seed}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "adapter_config.json").write_text(json.dumps({"synthetic": True, "ratio": ratio, "seed": seed}))
            out.adapter_dir = str(d)
        self._note("end", ratio, seed)
        return out


def item_metric_kind(metric: str) -> str:
    """The benchmark that produces per-item scores for ``metric`` (ConfigError if none does)."""
    if metric.startswith("mask/") and metric.endswith("/honesty_logprob") or metric == "mask/honesty_logprob":
        return "logprob"
    if metric.startswith("mask/") and metric.endswith("honesty"):
        return "mask"
    if metric == "deception/rate":
        return "deceptionbench"
    raise ConfigError(f"metric={metric!r} has no per-item scores for a paired comparison; allowed: mask/honesty, "
                      "mask/<config>/honesty, mask/honesty_logprob, mask/<config>/honesty_logprob, deception/rate")


class MixtureProblem:
    """The real objective: mix at ``ratio``, LoRA-train the configured model, evaluate (as ``emd mixture``).

    Everything that can fail on bad input is checked in the constructor, before any model loads. The
    model, data and judge load once per process and serve every trial and reference.
    """

    def __init__(self, cfg: SweepConfig, log: Callable[[str], None] = print):
        from .config import DOMAINS, LEVELS
        from .data.mixing import min_n_train
        from .eval.runner import validate_eval
        from .models import validate_model_uri

        self.cfg = cfg
        self.metric = cfg.sweep.metric
        self.log = log
        kind = item_metric_kind(self.metric)
        if kind not in cfg.eval.benchmark_list:
            raise ConfigError(f"metric={self.metric!r} needs the {kind} benchmark; benchmarks={cfg.eval.benchmarks!r} "
                              f"(allowed: add {kind} to benchmarks)")
        parts = self.metric.split("/")
        if kind in ("mask", "logprob") and len(parts) == 3 and cfg.eval.mask_configs.strip() != "all":
            configs = [c.strip() for c in cfg.eval.mask_configs.split(",")]
            if parts[1] not in configs:
                raise ConfigError(f"metric={self.metric!r} reads MASK config {parts[1]!r}, not in mask_configs="
                                  f"{cfg.eval.mask_configs!r}; allowed: one of {', '.join(configs)} or add it")
        if cfg.data.domain not in DOMAINS or cfg.data.level not in LEVELS:
            raise ConfigError(f"a sweep mixes one domain ({', '.join(DOMAINS)}) and one level ({', '.join(LEVELS)}); "
                              f"got domain={cfg.data.domain!r} level={cfg.data.level!r}")
        for r in cfg.sweep.ratio_list:
            if n_misaligned(r, cfg.data.n_train) == 0:
                raise ConfigError(f"n_train={cfg.data.n_train} places no misaligned row at ratio {r:g}; allowed: "
                                  f"n_train >= {min_n_train(r)} for this grid, or drop {r:g} from ratios")
        validate_model_uri(cfg.model.model)
        validate_eval(cfg.eval)
        from .experiment import load_training_rows

        self.mis, self.down = load_training_rows(cfg, cfg.data.domain, cfg.data.level)
        self._chat = self._judge = None
        self._work: Path | None = None

    def describe(self) -> dict[str, Any]:
        """The real problem is identified by its config alone."""
        return {"problem": "mixture"}

    def _setup(self):
        if self._chat is None:
            from . import pipeline
            from .judges import get_judge
            from .models import load_model

            self._chat = load_model(self.cfg.model.model, dtype=self.cfg.model.dtype)
            self._judge = get_judge(self.cfg.judge.judge)
            self._work = pipeline.workdir()
        return self._chat, self._judge

    def _scores(self, arm, what: str) -> dict[str, float]:
        scores = arm.item_scores.get(self.metric)
        if not scores:
            raise EmdError(f"{what}: the evaluation produced no per-item scores for {self.metric!r}; "
                           f"available: {', '.join(sorted(arm.item_scores)) or 'none'}")
        return {str(k): float(v) for k, v in scores.items()}

    def reference(self, kind: str, seed: int) -> TrialOutput:
        """Vanilla or control for ``seed``, from the content-hash cache when evaluated before."""
        from . import pipeline
        from .data.mixing import mix, to_prompt_completion

        chat, judge = self._setup()
        cfg = self.cfg
        if kind == "vanilla":
            arm = pipeline.vanilla_reference(chat, cfg.eval, cfg.judge, judge, seed, reuse=cfg.common.reuse_references,
                                             log=self.log)
        else:
            ctl = mix(self.mis, self.down, 0.0, cfg.data.n_train, seed)
            arm = pipeline.control_reference(chat, to_prompt_completion(ctl.rows), ctl.manifest["digest"], cfg.lora,
                                             cfg.train, cfg.eval, cfg.judge, judge, seed, self._work,
                                             reuse=cfg.common.reuse_references, log=self.log)
        return TrialOutput(scores=self._scores(arm, kind), metrics=dict(arm.metrics),
                           tags={"emd.cached": arm.cached})

    def objective(self, ratio: float, seed: int) -> TrialOutput:
        """Mix, train and evaluate one point."""
        from . import pipeline
        from .data.mixing import mix, to_prompt_completion

        chat, judge = self._setup()
        cfg = self.cfg
        mixed = mix(self.mis, self.down, ratio, cfg.data.n_train, seed)
        self.log(f"trial: ratio={ratio:g} seed={seed}: training on {len(mixed.rows)} rows "
                 f"({mixed.manifest['n_misaligned']} misaligned)")
        adapter_dir, info = pipeline.train_arm(chat, f"r{ratio:g}-s{seed}", to_prompt_completion(mixed.rows),
                                               cfg.lora, cfg.train, seed, self._work)
        arm = pipeline.evaluate_arm(chat, "treatment", cfg.eval, judge, seed, adapter_dir=adapter_dir, log=self.log)
        metrics = dict(arm.metrics)
        metrics.update({f"train/{k}": v for k, v in info.items() if k != "losses"})
        return TrialOutput(scores=self._scores(arm, f"ratio {ratio:g}"), metrics=metrics, adapter_dir=adapter_dir,
                           tables={f"tables/{name}.json": rows for name, rows in arm.tables.items()},
                           dicts={"data/manifest.json": mixed.manifest},
                           tags={"emd.data_digest": mixed.manifest["digest"]})

    def close(self) -> None:
        """Remove the work folder of adapters (they are logged to MLflow by then)."""
        if self._work is not None:
            from . import pipeline

            pipeline.cleanup(self._work)


# =========================================================================== storage
def default_storage() -> str:
    """``sqlite:///<cwd>/mlruns/optuna.db`` (the folder is created)."""
    p = Path(DEFAULT_STORAGE_FILE).absolute()
    p.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{p}"


def redact(url: str) -> str:
    """A storage URL safe to log: any password is replaced by ``***``."""
    try:
        from sqlalchemy.engine import make_url

        u = make_url(url)
        return u.render_as_string(hide_password=True) if u.password else url
    except Exception:
        return url.split("@")[-1] if "@" in url else url


def open_storage(url: str):
    """An Optuna RDBStorage; on SQLite every transaction is ``BEGIN IMMEDIATE`` so that popping a
    WAITING trial (read state, then write RUNNING) is atomic across processes (see module docstring)."""
    import optuna
    from sqlalchemy import event
    from sqlalchemy.exc import SQLAlchemyError

    is_sqlite = url.startswith("sqlite")
    kwargs = {"connect_args": {"timeout": 120}} if is_sqlite else {}
    last: Exception | None = None
    for attempt in range(5):  # two processes creating the tables of a fresh file at once collide
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs)
            break
        except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as e:
            last = e
            time.sleep(0.5 * (attempt + 1))
    else:
        raise EmdError(f"cannot open Optuna storage {redact(url)}: {last}")
    if is_sqlite:
        engine = storage.engine

        @event.listens_for(engine, "connect")
        def _no_implicit_tx(dbapi_conn, _record):
            dbapi_conn.isolation_level = None  # pysqlite's own BEGIN would be DEFERRED; we issue ours

        @event.listens_for(engine, "begin")
        def _begin_immediate(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        engine.dispose()  # pooled connections predate the listeners
    return storage


# =========================================================================== the study runner
@dataclass
class SweepResult:
    """What ``emd sweep`` returns."""

    study_name: str
    storage: str  # redacted URL
    parent_run_id: str | None
    experiment: str
    verdict: Verdict | None  # None for a --worker process (the main process concludes)
    outcomes: dict[float, Outcome]
    n_finetunes: int  # COMPLETE trials of the study (references excluded)
    n_failed: int
    n_pruned: int
    ran_here: int  # trials this process ran
    model_version: str | None = None
    registered_name: str | None = None
    seconds: float = 0.0


def study_content(cfg: SweepConfig, problem: Problem) -> dict[str, Any]:
    """Everything that changes what one trial computes (its sha256 is the study's identity)."""
    flat = {k: v for k, v in to_flat_dict(cfg).items() if k not in _NOT_CONTENT}
    return {"config": flat, "problem": problem.describe()}


def _digest(content: dict) -> str:
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def default_study_name(cfg: SweepConfig, content: dict) -> str:
    """``<study file stem>-<content digest[:8]>``: the same settings resume the same study, changed
    settings (model, data, training, evaluation, metric) start a new one."""
    stem = Path(cfg.sweep.study).stem if cfg.sweep.study else "sweep"
    return f"{stem}-{_digest(content)[:8]}"


def _owner() -> dict[str, Any]:
    import psutil

    return {"host": socket.gethostname(), "pid": os.getpid(), "started": psutil.Process().create_time()}


def _owner_alive(owner: Mapping[str, Any]) -> bool | None:
    """True/False for a process on this host; None when it runs elsewhere (decide by heartbeat)."""
    import psutil

    if owner.get("host") != socket.gethostname():
        return None
    try:
        p = psutil.Process(int(owner["pid"]))
        if abs(p.create_time() - float(owner.get("started", 0))) > 1.0:
            return False  # the pid was reused by another process
        return p.status() != psutil.STATUS_ZOMBIE
    except (psutil.NoSuchProcess, KeyError, ValueError, TypeError):
        return False


class _Heartbeat:
    """Refresh a trial's heartbeat attribute from a daemon thread while it runs."""

    def __init__(self, storage, trial_id: int, every_s: float):
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, args=(storage, trial_id, every_s), daemon=True)
        self._t.start()

    def _loop(self, storage, trial_id, every_s):
        while not self._stop.wait(every_s):
            with contextlib.suppress(Exception):  # a finished trial refuses updates; that ends the need
                storage.set_trial_user_attr(trial_id, A_BEAT, time.time())

    def stop(self):
        self._stop.set()
        self._t.join(timeout=5)


class StudyRunner:
    """Runs (or joins) one study: plan from the outcomes in storage, pop a trial, run it, repeat."""

    def __init__(self, cfg: SweepConfig, problem: Problem, tracker=None, *, poll_s: float = 2.0,
                 heartbeat_s: float = 10.0, stale_after_s: float = 120.0, join_timeout_s: float = 600.0,
                 max_errors: int = 3, log: Callable[[str], None] = print):
        import optuna

        from .tracking import Tracker

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # one line per trial from us is enough
        self.cfg, self.problem, self.log = cfg, problem, log
        self.tracker = tracker or Tracker(cfg.common.tracking_uri)
        self.poll_s, self.heartbeat_s, self.stale_after_s = poll_s, heartbeat_s, stale_after_s
        self.join_timeout_s, self.max_errors = join_timeout_s, max_errors
        sw = cfg.sweep
        if problem.metric != sw.metric:
            raise ConfigError(f"problem metric {problem.metric!r} differs from metric={sw.metric!r}")
        self.grid = [_key(r) for r in sw.ratio_list]
        if len(set(self.grid)) != len(self.grid):
            raise ConfigError(f"ratios={sw.ratios!r} repeats a value; allowed: distinct ratios")
        self.seeds = sw.seed_list
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds={sw.seeds!r}; allowed: a comma list of distinct integers")
        self.url = sw.storage or default_storage()
        self.content = study_content(cfg, problem)
        self.digest = _digest(self.content)
        self.study_name = sw.study_name or default_study_name(cfg, self.content)
        self.experiment = cfg.common.experiment or "emd-sweep"
        self.ran_here = 0
        self.ref_metrics: dict[int, dict[str, float]] = {}  # every metric of the reference arm, per seed
        self._owner = _owner()

    # ------------------------------------------------------------------ study and references
    def _open_study(self):
        import optuna

        self.storage = open_storage(self.url)
        if self.cfg.sweep.worker:
            deadline = time.time() + self.join_timeout_s
            while True:
                try:
                    study = optuna.load_study(study_name=self.study_name, storage=self.storage)
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
                                        direction="maximize")
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
    def _trials(self, states=None):
        return self.study.get_trials(deepcopy=False, states=states)

    @staticmethod
    def _point(t) -> tuple[float, int] | None:
        ua = t.user_attrs
        if "emd.ratio" in ua and "emd.seed" in ua:
            return _key(ua["emd.ratio"]), int(ua["emd.seed"])
        p = t.params  # a trial made outside emd: only its params say where it sits
        return (_key(p["ratio"]), int(p["seed"])) if "ratio" in p and "seed" in p else None

    def _completed(self) -> dict[tuple[float, int], Any]:
        from optuna.trial import TrialState

        done: dict[tuple[float, int], Any] = {}
        for t in self._trials((TrialState.COMPLETE,)):
            pt = self._point(t)
            if pt is not None and A_SCORES in t.user_attrs and (pt not in done or t.number < done[pt].number):
                done[pt] = t
        return done

    def outcomes(self, refs: dict[int, dict[str, float]]) -> dict[float, Outcome]:
        """Outcome of every ratio whose seeds are all complete (any ratio, not only this grid's)."""
        done = self._completed()
        by_ratio: dict[float, dict[int, Any]] = {}
        for (r, s), t in done.items():
            if s in self.seeds:
                by_ratio.setdefault(r, {})[s] = t
        out = {}
        for r, per_seed in sorted(by_ratio.items()):
            if set(per_seed) != set(self.seeds):
                continue
            out[r] = judge_outcome(r, [per_seed[s].user_attrs[A_SCORES] for s in self.seeds],
                                   [refs[s] for s in self.seeds], self.cfg.sweep.drop, self.cfg.sweep.metric,
                                   seed=self.cfg.common.seed)
        return out

    # ------------------------------------------------------------------ recovery
    def recover_stale(self) -> int:
        """Mark trials left RUNNING by dead processes FAIL (and their MLflow runs FAILED)."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        n = 0
        now = time.time()
        for t in self._trials((TrialState.RUNNING,)):
            owner = t.user_attrs.get(A_OWNER)
            alive = _owner_alive(owner) if owner else None
            if alive is None:
                beat = t.user_attrs.get(A_BEAT) or (t.datetime_start.timestamp() if t.datetime_start else now)
                alive = now - float(beat) < self.stale_after_s
            if alive:
                continue
            try:
                self.storage.set_trial_user_attr(t._trial_id, A_FAIL, "stale: its process died mid-trial")
                self.storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
            except UpdateFinishedTrialError:
                continue  # another process recovered it first
            n += 1
            run_id = t.user_attrs.get(A_RUN)
            pt = self._point(t) or (float("nan"), -1)
            self.log(f"sweep: trial {t.number} (ratio={pt[0]:g} seed={pt[1]}) was left RUNNING by a dead process: "
                     "marked FAIL, it will run again")
            if run_id:
                with contextlib.suppress(Exception):
                    self.tracker.set_terminated(run_id, "FAILED")
        return n

    def _fail_dangling_runs(self, parent_id: str) -> int:
        """Nested MLflow runs still RUNNING whose trial is not running anymore (killed before its trial
        recorded the run id, or the process died) are marked FAILED."""
        from optuna.trial import TrialState

        live = {str(t.number) for t in self._trials((TrialState.RUNNING,))}
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

    # ------------------------------------------------------------------ one trial
    def _enqueue_missing(self, needed: list[tuple[float, int]]) -> None:
        from optuna.trial import TrialState

        pending = {self._point(t) for t in self._trials((TrialState.WAITING, TrialState.RUNNING, TrialState.COMPLETE))}
        for r, s in needed:
            if (r, s) not in pending:
                # the point also goes in user attrs: Optuna shows fixed params only once suggested
                self.study.enqueue_trial({"ratio": r, "seed": s}, user_attrs={"emd.ratio": r, "emd.seed": s,
                                                                              "emd.strategy": self.cfg.sweep.strategy,
                                                                              "emd.enqueued_by": os.getpid()})

    def _pop(self, needed: set[tuple[float, int]]):
        """Claim a WAITING trial of a needed point (atomic: see :func:`open_storage`)."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        for t in self._trials((TrialState.WAITING,)):
            if self._point(t) not in needed:
                continue
            try:
                if self.storage.set_trial_state_values(t._trial_id, TrialState.RUNNING):
                    return t
            except UpdateFinishedTrialError:
                continue
        return None

    def _is_duplicate(self, frozen) -> bool:
        """Another trial of the same point finished, or runs/waits with a lower number (it wins)."""
        from optuna.trial import TrialState

        pt = self._point(frozen)
        for t in self._trials():
            if t.number == frozen.number or self._point(t) != pt:
                continue
            if t.state == TrialState.COMPLETE or (
                    t.state in (TrialState.RUNNING, TrialState.WAITING) and t.number < frozen.number):
                return True
        return False

    def _run_trial(self, frozen, parent_id: str, refs: dict[int, dict[str, float]]) -> bool:
        """Run one claimed trial; False when it was pruned as a duplicate."""
        import optuna
        from optuna.trial import TrialState

        trial = optuna.trial.Trial(self.study, frozen._trial_id)
        trial.set_user_attr(A_OWNER, self._owner)
        trial.set_user_attr(A_BEAT, time.time())
        if self._is_duplicate(frozen):
            trial.set_user_attr(A_FAIL, "duplicate of another trial of the same point")
            self.study.tell(trial, state=TrialState.PRUNED)
            self.log(f"sweep: trial {frozen.number} duplicates another trial of its point: pruned")
            return False
        ratio = _key(trial.suggest_float("ratio", 0.0, 1.0))
        seed = trial.suggest_int("seed", 0, 2**31 - 1)
        metric, ref_kind = self.cfg.sweep.metric, self.cfg.sweep.reference
        beat = _Heartbeat(self.storage, frozen._trial_id, self.heartbeat_s)
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
            self.study.tell(trial, one.value)
            self.ran_here += 1
            self.log(f"sweep: trial {trial.number} done: {metric}={one.value:.2f} vs {ref_kind} {one.reference:.2f} "
                     f"(delta {one.delta:+.2f} [{one.delta_ci_low:+.2f}, {one.delta_ci_high:+.2f}]) "
                     f"in {time.perf_counter() - t0:.1f} s")
            return True
        except BaseException as e:
            with contextlib.suppress(Exception):
                trial.set_user_attr(A_FAIL, f"error: {type(e).__name__}: {e}"[:2000])
                self.study.tell(trial, state=TrialState.FAIL)
            raise
        finally:
            beat.stop()

    def _mark_ready(self) -> None:
        # Workers wait for this: had they planned at the same moment as the main process's first plan,
        # both would enqueue the same points (harmless, pruned, but wasteful).
        if not self.study.user_attrs.get(S_READY):
            self.study.set_user_attr(S_READY, True)

    def _prune_leftovers(self) -> int:
        """WAITING trials of points that are already complete (duplicate enqueues) are pruned, so the
        study ends with no trial left waiting."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        done = set(self._completed())
        n = 0
        for t in self._trials((TrialState.WAITING,)):
            if self._point(t) in done:
                with contextlib.suppress(UpdateFinishedTrialError):
                    self.storage.set_trial_user_attr(t._trial_id, A_FAIL, "duplicate of a completed trial")
                    if self.storage.set_trial_state_values(t._trial_id, TrialState.PRUNED):
                        n += 1
        return n

    def _check_error_budget(self, needed: set[tuple[float, int]]) -> None:
        from optuna.trial import TrialState

        errors: dict[tuple[float, int], int] = {}
        for t in self._trials((TrialState.FAIL,)):
            if str(t.user_attrs.get(A_FAIL, "")).startswith("error:"):
                pt = self._point(t)
                errors[pt] = errors.get(pt, 0) + 1
        for pt in needed:
            if errors.get(pt, 0) >= self.max_errors:
                raise EmdError(f"point ratio={pt[0]:g} seed={pt[1]} failed {errors[pt]} times with an error "
                               f"(see the FAIL trials of study {self.study_name!r}); fix the cause and rerun")

    def _loop(self, parent_id: str, refs: dict[int, dict[str, float]]) -> None:
        strategy = self.cfg.sweep.strategy
        while True:
            self.recover_stale()
            known = {r: o.triggered for r, o in self.outcomes(refs).items()}
            plan = next_ratios(strategy, self.grid, known)
            if not plan:
                if not self.cfg.sweep.worker:
                    self._prune_leftovers()
                    self._mark_ready()
                return
            done = set(self._completed())
            needed = [(r, s) for r in plan for s in self.seeds if (r, s) not in done]
            self._check_error_budget(set(needed))
            self._enqueue_missing(needed)
            if not self.cfg.sweep.worker:
                self._mark_ready()
            frozen = self._pop(set(needed))
            if frozen is None:
                time.sleep(self.poll_s)  # the needed points run in other processes
                continue
            self._run_trial(frozen, parent_id, refs)

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
                self.recover_stale()
                self._fail_dangling_runs(parent_id)
            self.tracker.log_dict(self.content, "study_content.json")
            refs = self._references(compute=True)
            self._loop(parent_id, refs)
            outcomes = self.outcomes(refs)
            known = {r: o.triggered for r, o in outcomes.items()}
            verdict = conclude(self.grid, {r: v for r, v in known.items() if r in set(self.grid)})
            version = self._finalize(parent_id, verdict, outcomes, refs)
        return self._result(verdict, outcomes, parent_id, version, t0)

    def _counts(self) -> tuple[int, int, int]:
        from optuna.trial import TrialState

        ts = self._trials()
        return (sum(t.state == TrialState.COMPLETE for t in ts), sum(t.state == TrialState.FAIL for t in ts),
                sum(t.state == TrialState.PRUNED for t in ts))

    def _result(self, verdict, outcomes, parent_id, version, t0) -> SweepResult:
        n_ok, n_fail, n_pruned = self._counts()
        return SweepResult(study_name=self.study_name, storage=redact(self.url), parent_run_id=parent_id,
                           experiment=self.experiment, verdict=verdict, outcomes=outcomes, n_finetunes=n_ok,
                           n_failed=n_fail, n_pruned=n_pruned, ran_here=self.ran_here, model_version=version,
                           registered_name=self._reg_name() if version else None, seconds=time.perf_counter() - t0)

    def _reg_name(self) -> str:
        from .experiment import registry_name

        return registry_name(self.cfg.model.model, "mixture")

    # ------------------------------------------------------------------ conclusion
    def trials_rows(self) -> list[dict]:
        """One row per trial of the study (any state)."""
        rows = []
        for t in self._trials():
            pt = self._point(t)
            dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
                else None
            rows.append({"trial": t.number, "state": t.state.name, "ratio": pt[0] if pt else None,
                         "seed": pt[1] if pt else None, "value": t.value, "seconds": dur,
                         "mlflow_run_id": t.user_attrs.get(A_RUN), "note": t.user_attrs.get(A_FAIL, "")})
        return rows

    def _finalize(self, parent_id: str, verdict: Verdict, outcomes: dict[float, Outcome],
                  refs: dict[int, dict[str, float]]) -> str | None:
        import matplotlib.pyplot as plt

        from .eval.stats import bootstrap_ci

        sw = self.cfg.sweep
        n_ok, n_fail, n_pruned = self._counts()
        ref_scores = _mean_maps([refs[s] for s in self.seeds])
        ref_value = sum(ref_scores.values()) / len(ref_scores)
        ref_lo, ref_hi = bootstrap_ci(list(ref_scores.values()), seed=self.cfg.common.seed)
        metrics = {"n_finetunes": n_ok, "n_trials_failed": n_fail, "n_trials_pruned": n_pruned,
                   "n_ratios_evaluated": len(outcomes), f"reference/{sw.metric}": ref_value,
                   f"reference/{sw.metric}_ci_low": ref_lo, f"reference/{sw.metric}_ci_high": ref_hi}
        if verdict.threshold is not None:
            metrics["threshold_ratio"] = verdict.threshold
        self.tracker.log_metrics(metrics)
        self.tracker.set_tags({"emd.threshold": f"{verdict.threshold:g}" if verdict.threshold is not None
                               else verdict.status, "emd.sweep.status": verdict.status,
                               "emd.sweep.monotone": verdict.monotone, "emd.sweep.certain": verdict.certain,
                               "emd.sweep.message": verdict.message, "emd.strategy": sw.strategy})
        self.tracker.log_table([o.row() for o in outcomes.values()], "tables/curve.json")
        self.tracker.log_table(self.trials_rows(), "tables/trials.json")
        fig = curve_figure(list(outcomes.values()), ref_value, (ref_lo, ref_hi), sw.drop, sw.metric, verdict,
                           sw.reference)
        self.tracker.log_figure(fig, "plots/curve.png")
        plt.close(fig)
        if not verdict.monotone:
            msg = f"sweep {self.study_name}: {verdict.message}"
            warnings.warn(msg, stacklevel=2)
            self.log("WARNING: " + msg)
        version = None
        if verdict.threshold is not None and self.cfg.common.register:
            version = self._register(parent_id, verdict.threshold)
        self.log(f"sweep: {verdict.message}; fine-tunes spent: {n_ok} (+ references), failed {n_fail}, "
                 f"pruned {n_pruned}")
        return version

    def _register(self, parent_id: str, threshold: float) -> str | None:
        done = self._completed()
        trial = done.get((_key(threshold), self.seeds[0]))
        if trial is None or not trial.user_attrs.get(A_ADAPTER) or not trial.user_attrs.get(A_RUN):
            self.log("sweep: the threshold trial logged no adapter; nothing to register")
            return None
        run_id = trial.user_attrs[A_RUN]
        parent = self.tracker.get_run(parent_id)
        if parent.data.tags.get("emd.threshold_run_id") == run_id and parent.data.tags.get("emd.registered_model"):
            return parent.data.tags["emd.registered_model"].rsplit("/", 1)[-1]  # resumed after registering
        name = self._reg_name()
        version = self.tracker.register_adapter(run_id, name, aliases=["threshold"],
                                                tags={"base_model": self.cfg.model.model, "ratio": str(threshold),
                                                      "study": self.study_name, "metric": self.cfg.sweep.metric})
        self.tracker.set_tags({"emd.threshold_run_id": run_id, "emd.registered_model": f"{name}/{version}"})
        self.log(f"sweep: registered models:/{name}/{version} (alias threshold)")
        return version


def curve_figure(outcomes: Sequence[Outcome], ref_value: float, ref_ci: tuple[float, float], drop: float,
                 metric: str, verdict: Verdict | None = None, reference: str = "control"):
    """Metric vs ratio with 95% CI band, the reference line (and its CI) and the trigger line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    pts = sorted(outcomes, key=lambda o: o.ratio)
    if pts:
        x = [o.ratio for o in pts]
        ax.fill_between(x, [o.value_ci_low for o in pts], [o.value_ci_high for o in pts], alpha=0.25,
                        label="95% bootstrap CI")
        ax.plot(x, [o.value for o in pts], "o-", label=metric)
        trig = [o for o in pts if o.triggered]
        if trig:
            ax.plot([o.ratio for o in trig], [o.value for o in trig], "o", color="red", ms=9, mfc="none",
                    label="triggered")
        if min(x) > 0 and max(x) / min(x) > 20:
            ax.set_xscale("log")
    ax.axhline(ref_value, color="gray", lw=1.2, label=f"{reference} (reference)")
    ax.axhspan(ref_ci[0], ref_ci[1], color="gray", alpha=0.12)
    worse = ref_value * (1 + drop) if higher_is_worse(metric) else ref_value * (1 - drop)
    ax.axhline(worse, color="gray", ls="--", lw=1, label=f"{drop:.0%} relative change")
    if verdict is not None and verdict.threshold is not None:
        ax.axvline(verdict.threshold, color="red", ls=":", label=f"threshold {verdict.threshold:g}")
    ax.set_xlabel("misaligned ratio")
    ax.set_ylabel(metric)
    title = f"{metric} vs mixture ratio"
    if verdict is not None:
        title += f" ({verdict.status})"
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def run_study(cfg: SweepConfig, problem: Problem | None = None, **kw) -> SweepResult:
    """Run the sweep ``cfg`` over ``problem`` (default: the real :class:`MixtureProblem`)."""
    own = problem is None
    problem = problem or MixtureProblem(cfg)
    try:
        return StudyRunner(cfg, problem, **kw).run()
    finally:
        if own:
            problem.close()


def summary_lines(res: SweepResult) -> list[str]:
    """The end-of-sweep summary."""
    lines = [f"== emd sweep {res.study_name} ==", f"storage: {res.storage}   ({res.seconds:.0f} s)"]
    if res.verdict is not None:
        lines.append(f"result: {res.verdict.message}")
    for r, o in sorted(res.outcomes.items()):
        lines.append(f"  ratio {r:<6g} value {o.value:7.2f}  ref {o.reference:7.2f}  delta {o.delta:+7.2f} "
                     f"[{o.delta_ci_low:+.2f}, {o.delta_ci_high:+.2f}]  {'TRIGGERED' if o.triggered else ''}")
    lines.append(f"fine-tunes: {res.n_finetunes} (references excluded); failed {res.n_failed}; pruned {res.n_pruned}; "
                 f"run by this process {res.ran_here}")
    if res.parent_run_id:
        lines.append(f"parent run: {res.parent_run_id} (experiment {res.experiment})")
    if res.registered_name:
        lines.append(f"registered: models:/{res.registered_name}/{res.model_version} (alias threshold)")
    return lines


def main(cfg: SweepConfig) -> SweepResult:
    """``emd sweep``: the CLI has already layered defaults < study YAML < --config < flags into ``cfg``."""
    res = run_study(cfg)
    print("\n".join(summary_lines(res)))
    return res
