"""One ratio against the reference: the triggered verdict on the item-wise mean over seeds.

What "worse" means comes from the metric's declaration (:mod:`emd.metrics`), never from its name: a
sweep metric must be a declared ``score`` with a direction and per-item scores (paired comparison).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..errors import ConfigError, EmdError
from ..metrics import MetricSpec, declare, lookup
from .strategy import ratio_key

SWEEP_METRICS = declare(
    MetricSpec("sweep/rel_change", "info", None, "fraction", "relative change of the metric vs the reference"),
    MetricSpec("sweep/triggered", "info", None, "0/1", "1 when this ratio met the drop and its CI excluded zero"),
    MetricSpec("sweep/trial_seconds", "timing", None, "s", "wall time of one trial"),
    MetricSpec("n_finetunes", "count", None, "trials", "fine-tunes the study finished"),
    MetricSpec("n_trials_{what}", "count", None, "trials", "trials failed / pruned"),
    MetricSpec("n_ratios_evaluated", "count", None, "ratios", "grid points with an outcome"),
    MetricSpec("synthetic/rate", "info", None, "0-100", "the synthetic objective's value (tests, benchmarks)"),
    MetricSpec("threshold_ratio", "info", None, "fraction", "smallest ratio that triggered (absent: none)"),
)


def _sweepable() -> dict[str, tuple[MetricSpec, str]]:
    """Declared pattern -> (spec, benchmark) for every metric a sweep can search over: a score with a
    direction and per-item scores, produced by one of the evaluation benchmarks a trial runs."""
    from ..eval.benchmarks import BENCHMARKS

    return {s.pattern: (s, b.name) for b in BENCHMARKS.values() for s in b.metrics
            if s.kind == "score" and s.per_item and s.higher_is_better is not None}


def sweepable_patterns() -> list[str]:
    """The declared metric families a sweep can search over."""
    return sorted(_sweepable())


def sweep_metric(name: str) -> tuple[MetricSpec, str]:
    """(declaration, benchmark that produces it) of a sweep metric; ConfigError naming the allowed
    metrics when it is undeclared, not a score, has no direction or has no per-item scores."""
    spec = lookup(name)
    ok = _sweepable()
    allowed = ", ".join(sorted(ok))
    if spec is None:
        raise ConfigError(f"metric={name!r} is not a declared metric; allowed: {allowed}")
    if spec.pattern not in ok:
        why = (f"is a {spec.kind}, not a score" if spec.kind != "score" else
               "has no per-item scores for a paired comparison" if not spec.per_item else
               "has no direction" if spec.higher_is_better is None else "is not produced by an evaluation benchmark")
        raise ConfigError(f"metric={name!r} {why} (declared as {spec.pattern!r}); allowed: {allowed}")
    return ok[spec.pattern]


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


def mean_maps(maps: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Item-wise mean of several item -> score maps, over the items they all share."""
    shared = set(maps[0])
    for m in maps[1:]:
        shared &= set(m)
    return {k: sum(float(m[k]) for m in maps) / len(maps) for k in shared}


def judge_outcome(ratio: float, treated: Sequence[Mapping[str, float]], reference: Sequence[Mapping[str, float]],
                  drop: float, metric: str = "mask/honesty", n_boot: int = 1000, seed: int = 0) -> Outcome:
    """Compare the treated per-item scores (one map per seed) with the reference's (one per seed).

    Triggered iff the relative worsening reaches ``drop`` and the paired 95% bootstrap CI of the
    difference lies entirely on the worse side of zero (so noise alone does not set a threshold).
    "Worse" is the direction ``metric`` declares (:func:`sweep_metric`).
    """
    from ..eval.stats import bootstrap_ci, paired_bootstrap_delta

    higher_is_better = sweep_metric(metric)[0].higher_is_better
    if not treated or not reference:
        raise EmdError(f"ratio {ratio:g}: no scores to compare (treated {len(treated)}, reference {len(reference)})")
    a, b = mean_maps(treated), mean_maps(reference)
    shared = sorted(set(a) & set(b))
    if not shared:
        raise EmdError(f"ratio {ratio:g}: the treated and reference scores of {metric} share no item ids")
    a = {k: a[k] for k in shared}
    b = {k: b[k] for k in shared}
    value = sum(a.values()) / len(a)
    ref = sum(b.values()) / len(b)
    v_lo, v_hi = bootstrap_ci(list(a.values()), n_boot=n_boot, seed=seed)
    delta, lo, hi = paired_bootstrap_delta(a, b, n_boot=n_boot, seed=seed)
    worse = (ref - value) if higher_is_better else (value - ref)
    if ref != 0:
        rel = worse / abs(ref)
    else:
        rel = math.inf if worse > 0 else 0.0
    excludes_zero = hi < 0 if higher_is_better else lo > 0
    return Outcome(ratio=ratio_key(ratio), value=value, value_ci_low=v_lo, value_ci_high=v_hi, reference=ref,
                   delta=delta, delta_ci_low=lo, delta_ci_high=hi, rel_change=rel,
                   triggered=bool(rel >= drop - 1e-12 and excludes_zero), n_seeds=len(treated),
                   n_items=len(shared))


def trigger_line(reference: float, drop: float, metric: str) -> float:
    """The metric value at which a ratio has worsened by ``drop`` relative to ``reference``."""
    return reference * (1 - drop) if sweep_metric(metric)[0].higher_is_better else reference * (1 + drop)
