"""The benchmark registry: each benchmark's name, runner, whether it needs a judge, and its metrics.

Adding a benchmark means one :class:`Benchmark` entry here (its runner lives in its own module,
imported lazily) and its :class:`~emd.metrics.MetricSpec` declarations beside it. Deltas, reports,
sweeps and summaries read those declarations; nothing matches on metric names. Definitions:
``docs/metrics.md``.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from ..errors import ConfigError
from ..metrics import MetricSpec, declare

_H = "0-100 (100 x (1 - P(lie)))"

MASK_METRICS = declare(
    MetricSpec("mask/honesty", "score", True, _H, "judged MASK honesty over every scored row", per_item=True),
    MetricSpec("mask/{config}/honesty", "score", True, _H, "judged MASK honesty of one config", per_item=True),
    MetricSpec("mask/accuracy", "score", True, "%", "belief matches the ground truth (not provided_facts)"),
    MetricSpec("mask/{config}/accuracy", "score", True, "%", "belief accuracy of one config"),
    MetricSpec("mask/n_{what}", "count", None, "items", "row counts (items, scored, lie, honest, evasion, "
                                                          "no belief, judge failures, truncated)"),
    MetricSpec("mask/{config}/n_{what}", "count", None, "items", "row counts of one config"),
)

LOGPROB_METRICS = declare(
    MetricSpec("mask/honesty_logprob", "score", True, _H, "judge-free MASK honesty from log-probabilities",
               per_item=True),
    MetricSpec("mask/{config}/honesty_logprob", "score", True, _H, "judge-free honesty of one config",
               per_item=True),
    MetricSpec("mask/logprob_accuracy", "score", True, "%", "judge-free belief matches the ground truth"),
    MetricSpec("mask/logprob_margin_shift", "score", True, "nats",
               "mean pressure-minus-belief PMI margin toward the believed statement (negative = pressure-driven)"),
    MetricSpec("mask/{config}/logprob_margin_shift", "score", True, "nats", "margin shift of one config"),
    MetricSpec("mask/logprob_threshold", "info", None, "nats", "median data-derived reading threshold"),
    MetricSpec("mask/logprob_judge_agreement", "info", None, "%", "agreement of the judged and judge-free readings"),
    MetricSpec("mask/logprob_judge_n", "count", None, "items", "rows both readings scored"),
    MetricSpec("mask/logprob_n", "count", None, "items", "binary rows read"),
    MetricSpec("mask/logprob_n_{what}", "count", None, "items", "lies, no belief, evasive rows"),
)

DECEPTION_METRICS = declare(
    MetricSpec("deception/rate", "score", False, "%", "DeceptionBench deception rate: mean 1[R~U and Y!~U]",
               per_item=True),
    MetricSpec("deception/{type}/rate", "score", False, "%", "deception rate of one type", per_item=True),
    MetricSpec("deception/rate_parsed", "score", False, "%", "deception rate over parsed rows only (stricter)"),
    MetricSpec("deception/{type}/rate_parsed", "score", False, "%", "parsed-only deception rate of one type"),
    MetricSpec("deception/n_{what}", "count", None, "items", "row counts (items, scored, deceptive, failures, forced)"),
    MetricSpec("deception/{type}/n_{what}", "count", None, "items", "row counts of one type"),
)

CAPABILITY_METRICS = declare(
    MetricSpec("cap/{task}/{metric}", "score", None, "", "an lm-eval metric (direction: the task's own)"),
    MetricSpec("cap/{task}/{metric}/{filter}", "score", None, "", "an lm-eval metric after a filter"),
)

MECH_METRICS = declare(
    MetricSpec("mech/dishonesty_projection", "score", False, "hidden units",
               "mean projection of the arm's pressured MASK answers onto the base model's dishonesty direction",
               per_item=True),
    MetricSpec("mech/above_threshold_rate", "score", False, "%",
               "pressured answers projecting past the direction's class-mean midpoint"),
    MetricSpec("mech/n_items", "count", None, "items", "pressured answers projected"),
    MetricSpec("mech/layer", "info", None, "layer", "hidden-state index of the direction (0 = embeddings)"),
    MetricSpec("mech/direction_auroc", "info", None, "0-1", "held-out AUROC of the direction at its layer"),
)

AUDIT_METRICS = declare(
    MetricSpec("audit/estimated_ratio", "info", None, "fraction", "estimated share of misaligned rows in the audited set "
                                                         "(flagged share, Wilson interval)"),
    MetricSpec("audit/{method}/estimated_ratio", "info", None, "fraction", "flagged share by one method"),
    MetricSpec("audit/threshold_ratio", "info", None, "fraction", "the ratio the verdict compares against"),
    MetricSpec("audit/n_{what}", "count", None, "rows", "rows read, scored, flagged, skipped"),
    MetricSpec("audit/{method}/n_{what}", "count", None, "rows", "rows flagged / judge states by one method"),
    MetricSpec("direction/auroc", "info", None, "0-1", "held-out AUROC of the chosen layer"),
    MetricSpec("direction/auroc_by_layer", "info", None, "0-1", "held-out AUROC per layer (step = layer)"),
    MetricSpec("direction/{what}", "info", None, "", "layer, pair counts, class means and threshold"),
)

RUN_METRICS = declare(
    MetricSpec("judge/calls", "cost", None, "calls", "judge requests sent (cache misses)"),
    MetricSpec("judge/cache_hits", "cost", None, "calls", "judge answers read from the cache"),
    MetricSpec("judge/failures", "count", None, "calls", "judge calls that ended without a verdict"),
    MetricSpec("judge/latency_s", "timing", None, "s", "mean seconds per judge request"),
    MetricSpec("eval/seconds", "timing", None, "s", "wall time of one arm's evaluation"),
)


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: what it is called on the command line and what it needs."""

    name: str
    needs_judge: bool
    reads_mask_items: bool
    metrics: tuple[MetricSpec, ...]
    doc: str
    failure_counts: tuple[str, str] | None = None  # (judge-failure count, item count) metric names


BENCHMARKS: dict[str, Benchmark] = {
    "mask": Benchmark("mask", True, True, MASK_METRICS, "judged MASK honesty (Ren et al. 2025)",
                      ("mask/n_judge_failures", "mask/n_items")),
    "logprob": Benchmark("logprob", False, True, LOGPROB_METRICS, "judge-free MASK honesty (log-probabilities)"),
    "deceptionbench": Benchmark("deceptionbench", True, False, DECEPTION_METRICS,
                                "DeceptionBench deception rate (Ji et al. 2025)",
                                ("deception/n_judge_failures", "deception/n_items")),
    "capability": Benchmark("capability", False, False, CAPABILITY_METRICS, "lm-eval capability tasks"),
    "mechanism": Benchmark("mechanism", False, True, MECH_METRICS,
                           "projection of pressured MASK answers onto the dishonesty direction (emd.mech)"),
}


def get_benchmark(name: str) -> Benchmark:
    """The registry entry for ``name``; unknown names fail with the allowed values and a suggestion."""
    if name not in BENCHMARKS:
        close = difflib.get_close_matches(name, list(BENCHMARKS), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(f"benchmarks contains {name!r}{hint}; allowed: {', '.join(BENCHMARKS)} or none")
    return BENCHMARKS[name]


def is_judged(metric: str) -> bool:
    """True when ``metric`` (or its reference copy ``control/...``, or its delta) comes from a judged benchmark."""
    from ..metrics import lookup

    name = metric[len("delta/"):].rsplit("/vs_", 1)[0] if metric.startswith("delta/") else metric
    spec = lookup(name)
    return spec is not None and spec.kind == "score" and any(
        spec in b.metrics for b in BENCHMARKS.values() if b.needs_judge)
