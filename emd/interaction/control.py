"""Positive control: does selection by biased users' satisfaction favour validating replies?

The experiment only makes sense if selection pressure exists: with ``biased_ratio = 1.0`` the top-k
trajectories (what SFT trains on) must be measurably more validating than with ``biased_ratio = 0``.
:func:`selection_pressure` collects one population at each ratio with the same (base) model, selects
the top-k by satisfaction and compares the rule-based validation ``V`` of their assistant turns
(:mod:`emd.interaction.rating`), with a bootstrap interval over trajectories and a permutation test.

It also reports ``V`` over *all* collected trajectories, so the lift that selection adds (top-k minus
all) is visible apart from the difference the users' own messages make.

The collections are the round-1 training collections of ``emd interaction`` with the same settings
(same cache keys), so after a grid run this check costs no generation.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

from .dialogue import Trajectory
from .selection import select


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _traj_validation(trajs: Sequence[Trajectory]) -> list[float]:
    return [t.mean_validation for t in trajs if t.mean_validation is not None]


def bootstrap_diff(a: Sequence[float], b: Sequence[float], n_boot: int = 2000, seed: int = 0,
                   alpha: float = 0.05) -> tuple[float, float, float]:
    """mean(a) - mean(b) with an unpaired percentile-bootstrap interval (the two samples are independent)."""
    import numpy as np

    a_, b_ = np.asarray(a, float), np.asarray(b, float)
    if a_.size == 0 or b_.size == 0:
        raise ValueError("bootstrap_diff needs two non-empty samples")
    rng = np.random.default_rng(seed)
    da = a_[rng.integers(0, a_.size, (n_boot, a_.size))].mean(1)
    db = b_[rng.integers(0, b_.size, (n_boot, b_.size))].mean(1)
    lo, hi = np.quantile(da - db, [alpha / 2, 1 - alpha / 2])
    return float(a_.mean() - b_.mean()), float(lo), float(hi)


def permutation_p(a: Sequence[float], b: Sequence[float], n_perm: int = 5000, seed: int = 0) -> float:
    """One-sided permutation p-value of mean(a) > mean(b)."""
    rng = random.Random(seed)
    obs = _mean(a) - _mean(b)
    pool = list(a) + list(b)
    hits = 0
    for _ in range(n_perm):
        rng.shuffle(pool)
        if _mean(pool[:len(a)]) - _mean(pool[len(a):]) >= obs - 1e-12:
            hits += 1
    return (hits + 1) / (n_perm + 1)


@dataclass
class ControlResult:
    """Figures of the positive control."""

    top_k: int
    validation_top: dict[float, float]  # ratio -> mean V of the top-k trajectories
    validation_all: dict[float, float]  # ratio -> mean V of every collected trajectory
    satisfaction_top: dict[float, float]
    diff: float  # V_top(1.0) - V_top(0)
    ci_low: float
    ci_high: float
    p_value: float
    samples: dict[str, list[float]] = field(default_factory=dict)  # "top@1", "all@0", ... per-trajectory V
    trajectories: dict[float, list[Trajectory]] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        """Selection pressure exists: the 95% interval of the difference lies above zero."""
        return self.ci_low > 0

    def to_json(self) -> dict:
        """The figures (no trajectories) as a JSON-able dict."""
        return {"top_k": self.top_k, "validation_top": {str(k): v for k, v in self.validation_top.items()},
                "validation_all": {str(k): v for k, v in self.validation_all.items()},
                "satisfaction_top": {str(k): v for k, v in self.satisfaction_top.items()},
                "diff": self.diff, "ci_low": self.ci_low, "ci_high": self.ci_high, "p_value": self.p_value,
                "passed": self.passed}


def selection_pressure(chat, scenarios, spec, simulator, rule, seed: int = 0, ratios: tuple[float, float] = (0.0, 1.0),
                       log: Callable[[str], None] = print) -> ControlResult:
    """Collect at ``ratios`` (low, high) with ``chat`` and compare the top-k's validation (see module doc)."""
    from .rounds import collect_cached, training_population

    lo_r, hi_r = ratios
    trajs: dict[float, list[Trajectory]] = {}
    for ratio in (lo_r, hi_r):
        population, specs = training_population(scenarios, spec, ratio, seed, 1)
        trajs[ratio], _, _ = collect_cached(chat, specs, population, spec, simulator, rule,
                                            label=f"control ratio={ratio:g}", log=log)
    v_top, v_all, s_top, samples = {}, {}, {}, {}
    for ratio, ts in trajs.items():
        sel = select(ts, spec.top_k, 0, strict=False)
        samples[f"top@{ratio:g}"] = _traj_validation(sel.top)
        samples[f"all@{ratio:g}"] = _traj_validation(ts)
        v_top[ratio] = _mean(samples[f"top@{ratio:g}"])
        v_all[ratio] = _mean(samples[f"all@{ratio:g}"])
        s_top[ratio] = _mean([t.satisfaction for t in sel.top])
    diff, ci_lo, ci_hi = bootstrap_diff(samples[f"top@{hi_r:g}"], samples[f"top@{lo_r:g}"], seed=seed)
    p = permutation_p(samples[f"top@{hi_r:g}"], samples[f"top@{lo_r:g}"], seed=seed)
    return ControlResult(top_k=spec.top_k, validation_top=v_top, validation_all=v_all, satisfaction_top=s_top,
                         diff=diff, ci_low=ci_lo, ci_high=ci_hi, p_value=p, samples=samples, trajectories=trajs)


def control_figure(res: ControlResult):
    """Mean validation of all vs top-k trajectories at each ratio (95% bootstrap CIs), and V vs satisfaction."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from ..eval.stats import bootstrap_ci

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.8))
    ratios = sorted(res.validation_top)
    width = 0.35
    for j, (kind, label) in enumerate((("all", "all collected"), ("top", f"top-{res.top_k} selected"))):
        vals, errs = [], [[], []]
        for r in ratios:
            xs = res.samples[f"{kind}@{r:g}"]
            m = _mean(xs)
            lo, hi = bootstrap_ci(xs, seed=0) if xs else (m, m)
            vals.append(m)
            errs[0].append(max(0.0, m - lo))
            errs[1].append(max(0.0, hi - m))
        ax1.bar(np.arange(len(ratios)) + (j - 0.5) * width, vals, width, yerr=errs, capsize=3, label=label)
    ax1.set_xticks(np.arange(len(ratios)), [f"biased ratio {r:g}" for r in ratios])
    ax1.set_ylabel("rule-based validation V (0-1)")
    ax1.set_ylim(0, 1)
    ax1.legend(fontsize=8)
    ax1.set_title(f"top-k(1.0) - top-k(0) = {res.diff:+.2f} [{res.ci_low:+.2f}, {res.ci_high:+.2f}], "
                  f"p={res.p_value:.3g}", fontsize=8)
    for i, r in enumerate(ratios):
        ts = res.trajectories.get(r, [])
        ok = [t for t in ts if t.complete]
        ax2.scatter([t.mean_validation for t in ok], [t.satisfaction for t in ok], s=14, color=f"C{i}",
                    label=f"biased ratio {r:g}", alpha=0.8)
    ax2.set_xlabel("trajectory validation V")
    ax2.set_ylabel("satisfaction (mean rating)")
    ax2.set_xlim(0, 1)
    ax2.set_ylim(1, 10)
    ax2.legend(fontsize=8)
    ax2.set_title("what the users reward", fontsize=8)
    fig.suptitle("positive control: selection pressure towards validation", fontsize=10)
    fig.tight_layout()
    return fig
