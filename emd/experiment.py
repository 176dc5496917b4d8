"""The run skeleton every entry shares: what a run returns, registry names, summaries.

(The ``RunContext`` that owns validation, the tracker, training and evaluation of arms, logging and
the registry is built here; entries never import each other.) Layout: ``docs/architecture.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .metrics import MetricSpec, declare

TRAIN_METRICS = declare(
    MetricSpec("train/loss", "info", False, "nats", "training loss per logged step (the curve)"),
    MetricSpec("train/train_loss", "info", False, "nats", "mean training loss of the run"),
    MetricSpec("train/steps", "count", None, "steps", "optimiser steps"),
    MetricSpec("train/train_tokens", "count", None, "tokens", "training tokens seen"),
    MetricSpec("train/train_seconds", "timing", None, "s", "training wall time"),
    MetricSpec("train/train_tokens_per_s", "timing", None, "tokens/s", "training throughput"),
    MetricSpec("train/{what}", "info", None, "", "anything else the trainer logs (grad_norm, learning_rate, ...)"),
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


def summary_lines(title: str, res: RunResult, keys: list[str]) -> list[str]:
    """The short end-of-run summary."""
    lines = [f"== {title} ==", f"run id: {res.run_id}  (experiment {res.experiment}, {res.seconds:.0f} s)"]
    for k in keys:
        if k in res.metrics:
            lo, hi = res.metrics.get(k + "_ci_low"), res.metrics.get(k + "_ci_high")
            ci = f"  [{lo:.1f}, {hi:.1f}]" if lo is not None and hi is not None else ""
            lines.append(f"  {k:<40} {res.metrics[k]:8.2f}{ci}")
    if res.registered_name:
        lines.append(f"registered: models:/{res.registered_name}/{res.model_version}")
    lines.append("browse: mlflow ui --host 127.0.0.1 --port 5000   (at the repo root; open http://127.0.0.1:5000)")
    return lines
