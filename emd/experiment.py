"""The run skeleton every entry shares: :class:`RunContext`, what a run returns, registry names.

An entry's ``main(cfg)`` reads as the narrative of its experiment::

    with RunContext("mixture", cfg) as ctx:          # every input validated, no run or model yet
        with ctx.run(f"ratio={cfg.ratio:g}"):         # the MLflow run: params, config.yaml, tags
            vanilla, control = ctx.vanilla(), ctx.control(clean_rows, digest)
            arm = ctx.train_and_evaluate("treatment", rows)   # loss curve, adapter, metrics
            ctx.log_arm(arm, refs={"control": control, "vanilla": vanilla})
            ctx.register(aliases=[...])
        return ctx.result(title, keys)

Entries never import each other; what they share lives here and in :mod:`emd.pipeline` (the arms:
train, evaluate, cached references). Layout and MLflow conventions: ``docs/architecture.md``.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

from .errors import EmdError
from .guards import (judge_validation, looks_like_hub, make_judge, judge_failure_problems, judge_options,
                     truncation_warnings)
from .metrics import MetricSpec, declare

TRAIN_METRICS = declare(
    MetricSpec("train/loss", "info", False, "nats", "training loss per logged step (the curve)"),
    MetricSpec("train/train_loss", "info", False, "nats", "mean training loss of the run"),
    MetricSpec("train/steps", "count", None, "steps", "optimiser steps"),
    MetricSpec("train/train_tokens", "count", None, "tokens", "training tokens seen"),
    MetricSpec("train/train_seconds", "timing", None, "s", "training wall time"),
    MetricSpec("train/train_tokens_per_s", "timing", None, "tokens/s", "training throughput"),
    MetricSpec("train/{what}", "info", None, "", "anything else the trainer logs (grad_norm, learning_rate, ...)"),
    MetricSpec("train/{group}/{what}", "info", None, "", "grouped trainer logs (KTO: rewards/chosen_sum, "
               "logps/rejected_sum, count/chosen ...)"),
    MetricSpec("system/{what}", "info", None, "", "MLflow system metrics (CPU, memory, GPU with nvidia-ml-py), "
               "logged when the user sets MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING=true"),
    MetricSpec("n_cells", "count", None, "cells", "grid cells in a parent run"),
    MetricSpec("n_cells_trained_now", "count", None, "cells", "grid cells trained by this invocation"),
)


@dataclass
class RunResult:
    """What a training entry returns (and prints a summary of)."""

    run_id: str
    experiment: str
    metrics: dict[str, float] = field(default_factory=dict)
    model_version: str | None = None
    registered_name: str | None = None
    seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


def base_name(model_uri: str) -> str:
    """Short, registry-safe name of a base model: embedded:smollm2 -> smollm2, hf:org/Llama-3 -> llama-3."""
    arg = model_uri.split(":", 1)[1].rstrip("/")
    name = arg.split("/")[-1]
    if name.endswith(".gguf"):
        name = name[:-5]
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-") or "model"


def registry_name(model_uri: str, entry: str) -> str:
    """The one place a registered model's name is built: ``emd-<base>-<entry>``."""
    return f"emd-{base_name(model_uri)}-{entry}"


def ratio_alias(ratio: float) -> str:
    """Registry alias for a ratio (aliases allow letters, digits, _ and -): 0.05 -> ratio_0p05."""
    return "ratio_" + f"{ratio:g}".replace(".", "p")


def load_training_rows(cfg, domain: str, level: str):
    """Misaligned and downstream source rows for a config (errors before any model is loaded)."""
    from .data.loaders import load_downstream, load_misaligned

    skip = cfg.data.skip_bad_rows
    mis = load_misaligned(cfg.data.misaligned_source, domain, level, seed=cfg.common.seed, skip_bad_rows=skip)
    down = load_downstream(cfg.data.downstream, seed=cfg.common.seed, skip_bad_rows=skip)
    return mis, down


def summary_lines(title: str, res: RunResult, keys: list[str],
                  judged_note: Callable[[str], str] = lambda metric: "") -> list[str]:
    """The short end-of-run summary (``judged_note(metric)`` is appended to each metric's line)."""
    lines = [f"== {title} ==", f"run id: {res.run_id}  (experiment {res.experiment}, {res.seconds:.0f} s)"]
    for k in keys:
        if k in res.metrics:
            lo, hi = res.metrics.get(k + "_ci_low"), res.metrics.get(k + "_ci_high")
            ci = f"  [{lo:.1f}, {hi:.1f}]" if lo is not None and hi is not None else ""
            lines.append(f"  {k:<40} {res.metrics[k]:8.2f}{ci}{judged_note(k)}")
    if res.registered_name:
        lines.append(f"registered: models:/{res.registered_name}/{res.model_version}")
    lines.append("browse: mlflow ui --host 127.0.0.1 --port 5000   (at the repo root; open http://127.0.0.1:5000)")
    return lines


class JudgeFailureError(EmdError):
    """A judged benchmark lost more verdicts than ``max_judge_failure_rate`` allows (exit code 3: the
    input was fine, the measurement was not)."""

    exit_code = 3


class RunContext:
    """One invocation of an entry: validated inputs, the tracker, the model, arms and their logging.

    Construction validates everything that can fail on bad input (tracking store, model URI,
    benchmark items, judge reachability) before any MLflow run or model exists. Use it as a context
    manager: the work folder is removed on exit, whatever happened.
    """

    def __init__(self, entry: str, cfg: Any, *, log: Callable[[str], None] = print,
                 experiment: str | None = None):
        from . import pipeline
        from .models import validate_model_uri
        from .tracking import Tracker

        self.entry, self.cfg, self.log = entry, cfg, log
        self.t0 = time.perf_counter()
        self.experiment = experiment or cfg.common.experiment or f"emd-{entry}"
        self.tracker = Tracker(cfg.common.tracking_uri)
        from .shared_refs import for_tracker

        self.shared_refs = for_tracker(self.tracker)  # references on the tracking server (None: local store)
        validate_model_uri(cfg.model.model)
        self.eval_spec = getattr(cfg, "eval", None)
        self.benchmarks = self.eval_spec.benchmark_list if self.eval_spec is not None else []
        self.judge = None
        self.judge_options: dict[str, Any] = {}
        if self.benchmarks:
            from .eval.benchmarks import get_benchmark
            from .eval.runner import validate_eval

            validate_eval(self.eval_spec)
            if any(get_benchmark(b).needs_judge for b in self.benchmarks):
                self.judge_options = judge_options(cfg.judge.judge, self.eval_spec, cfg.model.engine)
                self.judge = make_judge(cfg.judge, self.judge_options)
        from .judges.shared import for_judge

        self.shared_verdicts = for_judge(self.judge, self.tracker) if self.judge is not None and cfg.judge.share_verdicts else None
        self.seed = cfg.common.seed
        self.work = pipeline.workdir()
        self.run_id: str | None = None
        self.metrics: dict[str, float] = {}
        self.version: str | None = None
        self._chat = None
        # vLLM's LoRA layers: an entry that evaluates the base model only turns them off (on CPU they slow
        # every request ~3x, adapter or not; docs/engine.md)
        self.engine_lora = True
        self._over_budget: list[str] = []
        self._warnings: list[str] = []
        self.judge_check: dict | None = None

    # ------------------------------------------------------------------ lifecycle
    def __enter__(self) -> "RunContext":
        return self

    def __exit__(self, *exc) -> None:
        from . import pipeline

        pipeline.cleanup(self.work)
        if self.judge is not None and hasattr(self.judge, "close"):
            with contextlib.suppress(Exception):
                self.judge.close()

    @contextlib.contextmanager
    def run(self, run_name: str, tags: dict[str, Any] | None = None, run_id: str | None = None,
            log_config: bool = True) -> Iterator[Any]:
        """Open (or, with ``run_id``, resume) the entry's run: standard tags, params, ``config.yaml``.

        Stale RUNNING runs of this entry (their process is gone) are marked FAILED first.
        """
        from .config import to_flat_dict, to_yaml

        self.tracker.mark_stale_runs(self.experiment, self.entry)
        all_tags = None if run_id else {**self.tracker.standard_tags(self.entry, self.cfg.model.model, extra=tags),
                                        **_owner_tags()}
        with self.tracker.run(self.experiment, run_name=run_name, run_id=run_id, tags=all_tags) as active:
            self.run_id = active.info.run_id
            if log_config:
                self.tracker.log_params(to_flat_dict(self.cfg))
                self.tracker.log_text(to_yaml(self.cfg), "config.yaml")
            if self.judge is not None:
                self.tracker.set_tags({"emd.judge": self.judge.id, "emd.judge_version": getattr(self.judge, "version", "")})
            if self.eval_spec is not None and self.benchmarks:
                self.tracker.set_tags(self.protocol_tags())
            if self.judge is not None and self.eval_spec.judge_validation:
                self.judge_check = judge_validation(self.cfg.judge.judge, self.log, self.judge_options)
                if self.judge_check:
                    self.tracker.set_tags({"emd.judge_accuracy": f"{self.judge_check['accuracy']:.3f}",
                                           "emd.judge_kappa": f"{self.judge_check['kappa']:.3f}"})
            yield active
            if self._over_budget:
                raise JudgeFailureError("; ".join(self._over_budget) + " (the metrics above are logged; allow more "
                                        "with --max-judge-failure-rate)")

    def protocol_tags(self) -> dict[str, str]:
        """``emd.protocol`` and, where the settings differ from the benchmarks' own, which ones
        (``emd.protocol_deviations``); a hub benchmark judged by the offline judge is flagged loudly."""
        from .eval.protocol import deviations

        spec = self.eval_spec
        judge_uri = self.cfg.judge.judge if self.judge is not None else ""
        tags = {"emd.protocol": spec.protocol}
        dev = deviations(spec, judge_uri)
        if dev:
            tags["emd.protocol_deviations"] = "; ".join(dev)[:4000]
        hub = [src for b, src in (("mask", spec.mask_source), ("deceptionbench", spec.deceptionbench_source))
               if b in self.benchmarks and looks_like_hub(src)]
        if hub and judge_uri.startswith("embed:"):
            msg = (f"benchmark source {', '.join(hub)} is judged by the offline {judge_uri} judge: its numbers are "
                   "NOT comparable with the benchmark's own (use an openai: or hf: judge)")
            self.log(f"WARNING: {msg}")
            tags["emd.not_comparable"] = msg
        return tags

    @contextlib.contextmanager
    def nested(self, run_name: str, tags: dict[str, Any] | None = None, params: dict[str, Any] | None = None):
        """A nested run under the open one (a grid cell, a round, a reference)."""
        tags = {"emd.entry": self.entry, **{k: str(v) for k, v in (tags or {}).items()}}
        with self.tracker.run(self.experiment, run_name=run_name, nested=True, tags=tags) as active:
            if params:
                self.tracker.log_params(params)
            yield active

    def resume_grid(self, grid_key: str, cell_tag: str = "emd.cell") -> tuple[str | None, dict[str, dict]]:
        """The newest parent run tagged ``emd.grid_key=<grid_key>`` and the metrics of its FINISHED
        children by cell; children left RUNNING by a killed process are marked FAILED (rerun)."""
        prev = self.tracker.search_runs(self.experiment, filter_string=f"tags.`emd.grid_key` = '{grid_key}'",
                                        order_by=["attributes.start_time DESC"])
        if prev.empty:
            return None, {}
        parent_id = prev.iloc[0]["run_id"]
        done: dict[str, dict] = {}
        kids = self.tracker.search_runs(self.experiment, filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
        for _, r in kids.iterrows():
            cell = r.get(f"tags.{cell_tag}")
            if r["status"] == "FINISHED" and isinstance(cell, str):
                done[cell] = {k[len("metrics."):]: float(v) for k, v in r.items()
                              if k.startswith("metrics.") and v == v}
            elif r["status"] == "RUNNING":
                self.tracker.set_terminated(r["run_id"], "FAILED")
        return parent_id, done

    @property
    def chat(self):
        """The base model, loaded on first use (its template hash and size become tags of the open run)."""
        if self._chat is None:
            from .models import load_model

            self.phase("model")
            from .engines import attach_engine

            spec = self.cfg.model
            self._chat = load_model(spec.model, dtype=spec.dtype, template_kwargs=spec.template_kwargs, spec=spec)
            settings = {**spec.engine_settings, "enable_lora": self.engine_lora}
            engine, reason = attach_engine(self._chat, spec.engine, settings, log=self.log)
            self.tracker.set_tags({"emd.chat_template_hash": self._chat.chat_template_hash,
                                   "emd.n_params": self._chat.info.get("n_params"),
                                   "emd.engine": engine, "emd.engine_reason": reason[:500]})
        return self._chat

    def phase(self, name: str) -> None:
        """One progress line per phase (``emd phase: <name>``): what a log reader or the fault-matrix
        benchmark waits for."""
        self.log(f"emd phase: {name} ({time.perf_counter() - self.t0:.1f} s)")

    def reload_model(self) -> None:
        """Drop the loaded model and load fresh base weights (after a merge changed them in place)."""
        import gc

        self._chat = None
        gc.collect()
        _ = self.chat

    # ------------------------------------------------------------------ arms
    def vanilla(self, seed: int | None = None):
        """The base model's evaluation (cached by content)."""
        from . import pipeline

        chat = self.chat
        self.phase("vanilla")
        with self._verdicts("vanilla"):
            return pipeline.vanilla_reference(chat, self.eval_spec, self.cfg.judge, self.judge,
                                              self.seed if seed is None else seed,
                                              reuse=self.cfg.common.reuse_references, log=self.log,
                                              storable=self.within_budget, shared=self.shared_refs)

    def control(self, rows: Sequence[dict], data_digest: str, seed: int | None = None):
        """The clean-data fine-tune's evaluation (cached with its adapter by content)."""
        from . import pipeline

        chat = self.chat
        self.phase("control")
        with self._verdicts("control"):
            return pipeline.control_reference(chat, rows, data_digest, self.cfg.lora, self.cfg.train,
                                              self.eval_spec, self.cfg.judge, self.judge,
                                              self.seed if seed is None else seed, self.work,
                                              reuse=self.cfg.common.reuse_references, log=self.log,
                                              storable=self.within_budget, shared=self.shared_refs,
                                              resume=self.cfg.common.resume)

    @contextlib.contextmanager
    def _verdicts(self, label: str):
        """With ``share_verdicts``: import the verdicts others published before judging ``label``, publish
        the ones asked here after it (a failure of the tracking server is a warning: the local cache has them)."""
        shared = self.shared_verdicts
        if shared is not None:
            try:
                n = shared.pull()
                if n:
                    self.log(f"{label}: {n} judge verdicts imported from the tracking server")
            except Exception as e:  # noqa: BLE001 -- sharing is an optimisation, never the reason a run fails
                self.log(f"WARNING: shared judge verdicts could not be read ({type(e).__name__}: {e})")
        yield
        if shared is not None:
            try:
                shared.push(f"{self.entry}-{label}")
            except Exception as e:  # noqa: BLE001
                self.log(f"WARNING: judge verdicts could not be published ({type(e).__name__}: {e})")

    def train(self, name: str, rows: Sequence[dict], method: str = "sft", seed: int | None = None,
              log_adapter: bool = True) -> tuple[str, dict]:
        """Train one adapter; stream its curve and log its train/ metrics and (``log_adapter``) the adapter
        to the open run. ``seed`` defaults to the run's (a sweep trial passes its own)."""
        from . import pipeline

        chat = self.chat
        self.phase(f"train {name}")
        adapter_dir, info = pipeline.train_arm(chat, name, rows, self.cfg.lora, self.cfg.train,
                                               self.seed if seed is None else seed, self.work, method,
                                               progress=self.stream_training, resume=self.cfg.common.resume)
        self.log_training(info, curve=False)
        if log_adapter:
            self.tracker.log_artifacts(adapter_dir, "adapter")
        return adapter_dir, info

    def stream_training(self, logs: dict) -> None:
        """Log one trainer step (``train/loss``, ``train/grad_norm``, ``train/learning_rate`` ...) to the
        open run while training runs."""
        step = int(logs.get("step", 0))
        self.tracker.log_metrics({f"train/{k}": v for k, v in logs.items() if k != "step"}, step=step)

    def log_training(self, info: dict, curve: bool = True) -> None:
        """The scalar train/ metrics of one training and (``curve``: when it was not streamed, e.g. a
        cached control reused as the treatment) its loss curve, one point per logged step."""
        for i, loss in enumerate(info.get("losses", []) if curve else []):
            self.tracker.log_metrics({"train/loss": loss}, step=i + 1)
        scalars = {f"train/{k}": float(v) for k, v in info.items()
                   if k != "losses" and isinstance(v, (int, float)) and not isinstance(v, bool)}
        self.tracker.log_metrics(scalars)
        self.metrics.update(scalars)

    def evaluate(self, name: str, adapter_dir: str | None = None, seed: int | None = None):
        """Evaluate the base model (+ adapter) on every configured benchmark (an empty arm if none)."""
        from . import pipeline

        if not self.benchmarks:
            return pipeline.Arm(name=name, adapter_dir=adapter_dir)
        chat = self.chat
        self.phase(f"evaluate {name}")
        with self._verdicts(name):
            return pipeline.evaluate_arm(chat, name, self.eval_spec, self.judge, self.seed if seed is None else seed,
                                         adapter_dir=adapter_dir, log=self.log)

    def train_and_evaluate(self, name: str, rows: Sequence[dict], method: str = "sft"):
        """:meth:`train` then :meth:`evaluate`; the arm carries its training info."""
        adapter_dir, info = self.train(name, rows, method)
        arm = self.evaluate(name, adapter_dir)
        arm.train = info
        return arm

    # ------------------------------------------------------------------ logging
    def log_arm(self, arm, refs: dict[str, Any] | None = None, ref_prefix: bool = True) -> dict[str, float]:
        """Log an arm's metrics, its deltas vs each reference (with CIs), its tables, and (with
        ``ref_prefix``) the references' own metrics as ``<ref>/<metric>``. Returns what was logged."""
        from .pipeline import deltas, log_arm_tables

        out = dict(arm.metrics)
        for ref_name, ref in (refs or {}).items():
            if ref is None:
                continue
            out.update(deltas(arm, ref, ref_name, seed=self.seed))
            if ref_prefix:
                out.update({f"{ref_name}/{k}": v for k, v in ref.metrics.items()})
        self.tracker.log_metrics(out)
        for a in [arm, *[r for r in (refs or {}).values() if r is not None]]:
            log_arm_tables(self.tracker, a)
            self.check_judge_failures(a)
            for msg in truncation_warnings(a.metrics):
                if f"{a.name}: {msg}" not in self._warnings:
                    self._warnings.append(f"{a.name}: {msg}")
                    self.log(f"WARNING: {a.name}: {msg}")
        self.metrics.update(out)
        return out

    def within_budget(self, arm) -> bool:
        """Whether every judged benchmark of ``arm`` kept its judge failures within the budget."""
        return not judge_failure_problems(arm.metrics, self.eval_spec)

    def check_judge_failures(self, arm) -> None:
        """Tag the open run and remember (the run then ends FAILED) an arm over the judge-failure budget."""
        problems = judge_failure_problems(arm.metrics, self.eval_spec)
        for p in problems:
            msg = f"{arm.name}: {p}"
            if msg not in self._over_budget:
                self.log(f"WARNING: {msg}")
                self._over_budget.append(msg)
                self.tracker.set_tags({"emd.judge_failures": "; ".join(self._over_budget)[:4000]})

    def figure(self, fig, artifact_file: str) -> None:
        """Log a matplotlib figure as a PNG artifact and close it."""
        import matplotlib.pyplot as plt

        self.tracker.log_figure(fig, artifact_file)
        plt.close(fig)

    def register(self, aliases: Sequence[str] = (), tags: dict[str, Any] | None = None,
                 run_id: str | None = None) -> str | None:
        """Register the open run's ``adapter/`` as a version of ``emd-<base>-<entry>`` (unless disabled)."""
        if not self.cfg.common.register:
            return None
        self.phase("register")
        name = registry_name(self.cfg.model.model, self.entry)
        from .registry import model_config

        m = self.cfg.model
        version = self.tracker.register_adapter(run_id or self.run_id, name, aliases=list(aliases),
                                                tags={"base_model": m.model,
                                                      **{k: str(v) for k, v in (tags or {}).items()}},
                                                model_config=model_config(m.model, m.dtype, m.template_kwargs))
        self.tracker.set_tags({"emd.registered_model": f"{name}/{version}"})
        if run_id is None:
            self.version = version
        return version

    def result(self, title: str, keys: Sequence[str], extra: dict[str, Any] | None = None,
               lines: Sequence[str] = ()) -> RunResult:
        """The entry's return value; prints the end-of-run summary (with ``lines`` before the footer)."""
        res = RunResult(run_id=self.run_id or "", experiment=self.experiment, metrics=dict(self.metrics),
                        model_version=self.version,
                        registered_name=registry_name(self.cfg.model.model, self.entry) if self.version else None,
                        seconds=time.perf_counter() - self.t0, extra=dict(extra or {}))
        out = summary_lines(title, res, list(keys), judged_note=self._judged_note)
        for line in [*lines, *self.notes()]:
            out.insert(-1, line)
        self.log("\n".join(out))
        return res


    def _judged_note(self, metric: str) -> str:
        """`` judge acc 0.94`` after a judged score (`` LOW-CONFIDENCE ...`` under the threshold)."""
        from .eval.benchmarks import is_judged
        from .judges.check import LOW_CONFIDENCE

        if not self.judge_check or not is_judged(metric):
            return ""
        acc = self.judge_check["accuracy"]
        return (f"  (judge acc {acc:.2f})" if acc >= LOW_CONFIDENCE
                else f"  LOW-CONFIDENCE (judge acc {acc:.2f} < {LOW_CONFIDENCE:.2f})")

    def notes(self) -> list[str]:
        """Summary lines on comparability: the protocol and how it differs from the benchmarks' own."""
        if self.eval_spec is None or not self.benchmarks:
            return []
        from .eval.protocol import deviations

        dev = deviations(self.eval_spec, self.cfg.judge.judge if self.judge is not None else "")
        out = [f"protocol: {self.eval_spec.protocol}" + (f" (differs from the benchmarks' protocol: {'; '.join(dev)})"
                                                          if dev else " (the benchmarks' own settings)")]
        m = self.metrics
        if self.judge is not None and "judge/calls" in m:
            out.append(f"judge {self.judge.id}: {m['judge/calls']:.0f} calls, {m.get('judge/cache_hits', 0):.0f} cached, "
                       f"{m.get('judge/failures', 0):.0f} failed, {m.get('judge/latency_s', 0):.2f} s per call"
                       + (f"; validated accuracy {self.judge_check['accuracy']:.2f}" if self.judge_check else ""))
        out += [f"WARNING: {p}" for p in [*self._over_budget, *self._warnings]]
        return out


def _owner_tags() -> dict[str, str]:
    """Which process owns a run: lets a later run of the same entry mark it FAILED once the process is gone."""
    return {"emd.host": socket.gethostname(), "emd.pid": str(os.getpid())}


def expand(value: str, allowed: Sequence[str]) -> list[str]:
    """``all`` or a comma list -> the list of names, in canonical order."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if "all" in names:
        return list(allowed)
    return [n for n in allowed if n in names]
