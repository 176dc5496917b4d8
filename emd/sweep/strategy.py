"""Search strategies over a sorted ratio grid: which ratios to evaluate next, and what the evaluated
points say (``grid``, ``ascending``, ``bisect``; see :mod:`emd.sweep` for what each one does).

Pure functions with no Optuna, MLflow or model in sight: every worker (and a resumed run) derives the
same plan from the same outcomes, and tests and benchmarks run whole searches in microseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..config import STRATEGIES
from ..errors import ConfigError


def ratio_key(ratio: float) -> float:
    """Canonical float for matching ratios read back from storage (0.1 stays 0.1, noise is cut)."""
    return round(float(ratio), 12)


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
    pts = sorted({ratio_key(r) for r in grid})
    kn = {ratio_key(r): bool(v) for r, v in known.items()}
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
    pts = sorted({ratio_key(r) for r in grid})
    seen = {ratio_key(r): bool(v) for r, v in path.items()}
    hits = [r for r in pts if seen.get(r)]
    below = [r for r in pts if r not in seen and (not hits or r < hits[0])]
    if below:
        return below[-1]
    return pts[-1] if pts[-1] not in seen else None


def conclude(grid: Sequence[float], known: Mapping[float, bool]) -> Verdict:
    """Threshold from the evaluated points: the smallest triggered ratio, unless the points contradict
    a monotone curve while the threshold relies on one (then ``inconsistent``)."""
    pts = sorted({ratio_key(r) for r in grid} | {ratio_key(r) for r in known})
    kn = {ratio_key(r): bool(v) for r, v in known.items()}
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
