"""Objectives a sweep runs: the :class:`Problem` protocol, the cheap :class:`SyntheticProblem` (tests,
benchmarks) and the real :class:`MixtureProblem` (mix at a ratio, LoRA-train, evaluate)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol

from ..config import SweepConfig, n_misaligned
from ..errors import ConfigError, EmdError
from .outcome import sweep_metric
from .strategy import ratio_key


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
        table = {ratio_key(k): float(v) for k, v in self._curve.items()}
        if ratio_key(ratio) not in table:
            raise EmdError(f"synthetic curve has no value at ratio {ratio:g}; known: {sorted(table)}")
        return table[ratio_key(ratio)]

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
            d = Path(self.workdir or ".") / f"synthetic-adapter-{os.getpid()}-{ratio_key(ratio)}-{seed}"
            d.mkdir(parents=True, exist_ok=True)
            (d / "adapter_config.json").write_text(json.dumps({"synthetic": True, "ratio": ratio, "seed": seed}))
            out.adapter_dir = str(d)
        self._note("end", ratio, seed)
        return out


class MixtureProblem:
    """The real objective: mix at ``ratio``, LoRA-train the configured model, evaluate (as ``emd mixture``).

    Everything that can fail on bad input is checked in the constructor, before any model loads. The
    model, data and judge load once per process and serve every trial and reference.
    """

    def __init__(self, cfg: SweepConfig, log: Callable[[str], None] = print):
        from ..config import DOMAINS, LEVELS
        from ..data.mixing import min_n_train

        self.cfg = cfg
        self.metric = cfg.sweep.metric
        self.log = log
        spec, kind = sweep_metric(self.metric)
        if kind not in cfg.eval.benchmark_list:
            raise ConfigError(f"metric={self.metric!r} needs the {kind} benchmark; benchmarks={cfg.eval.benchmarks!r} "
                              f"(allowed: add {kind} to benchmarks)")
        parts = self.metric.split("/")
        if spec.pattern.startswith("mask/{config}/"):
            configs = cfg.eval.mask_config_list
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
        from ..experiment import RunContext, load_training_rows

        # the run skeleton's checks (store, model, items, judge reachability) before any model loads;
        # the sweep's runner opens the parent and trial runs, the context serves model, judge and arms
        self.ctx = RunContext("sweep", cfg, log=log)
        self.mis, self.down = load_training_rows(cfg, cfg.data.domain, cfg.data.level)

    def describe(self) -> dict[str, Any]:
        """The real problem is identified by its config alone."""
        return {"problem": "mixture"}

    def _scores(self, arm, what: str) -> dict[str, float]:
        scores = arm.item_scores.get(self.metric)
        if not scores:
            raise EmdError(f"{what}: the evaluation produced no per-item scores for {self.metric!r}; "
                           f"available: {', '.join(sorted(arm.item_scores)) or 'none'}")
        return {str(k): float(v) for k, v in scores.items()}

    def reference(self, kind: str, seed: int) -> TrialOutput:
        """Vanilla or control for ``seed``, from the content-hash cache when evaluated before."""
        from ..data.mixing import mix, to_prompt_completion

        if kind == "vanilla":
            arm = self.ctx.vanilla(seed=seed)
        else:
            ctl = mix(self.mis, self.down, 0.0, self.cfg.data.n_train, seed)
            arm = self.ctx.control(to_prompt_completion(ctl.rows), ctl.manifest["digest"], seed=seed)
        self._check(arm, kind)
        return TrialOutput(scores=self._scores(arm, kind), metrics=dict(arm.metrics),
                           tags={"emd.cached": arm.cached})

    def objective(self, ratio: float, seed: int) -> TrialOutput:
        """Mix, train and evaluate one point."""
        from ..data.mixing import mix, to_prompt_completion

        mixed = mix(self.mis, self.down, ratio, self.cfg.data.n_train, seed)
        self.log(f"trial: ratio={ratio:g} seed={seed}: training on {len(mixed.rows)} rows "
                 f"({mixed.manifest['n_misaligned']} misaligned)")
        # the loss curve streams into the trial's run; the runner logs the adapter with the trial
        adapter_dir, info = self.ctx.train(f"r{ratio:g}-s{seed}", to_prompt_completion(mixed.rows), seed=seed,
                                           log_adapter=False)
        arm = self.ctx.evaluate("treatment", adapter_dir, seed=seed)
        self._check(arm, f"ratio {ratio:g}")
        metrics = dict(arm.metrics)
        metrics.update({f"train/{k}": v for k, v in info.items() if k != "losses"})
        return TrialOutput(scores=self._scores(arm, f"ratio {ratio:g}"), metrics=metrics, adapter_dir=adapter_dir,
                           tables={f"tables/{name}.json": rows for name, rows in arm.tables.items()},
                           dicts={"data/manifest.json": mixed.manifest},
                           tags={"emd.data_digest": mixed.manifest["digest"]})

    def _check(self, arm, what: str) -> None:
        """A trial or reference over the judge-failure budget fails (never a silent score)."""
        from ..experiment import JudgeFailureError
        from ..guards import judge_failure_problems

        problems = judge_failure_problems(arm.metrics, self.cfg.eval)
        if problems:
            raise JudgeFailureError(f"{what}: " + "; ".join(problems))

    def close(self) -> None:
        """Remove the work folder of adapters (they are logged to MLflow by then)."""
        self.ctx.__exit__(None, None, None)
