"""The sweep's curve: the metric against the mixture ratio, with the reference and the trigger line."""

from __future__ import annotations

from typing import Sequence

from .outcome import Outcome, trigger_line
from .strategy import Verdict


def curve_figure(outcomes: Sequence[Outcome], ref_value: float, ref_ci: tuple[float, float], drop: float,
                 metric: str, verdict: Verdict | None = None, reference: str = "control"):
    """Metric vs ratio with 95% CI band, the reference line (and its CI) and the trigger line.

    A bare :class:`matplotlib.figure.Figure` (no pyplot state, no backend switch): nothing to close.
    """
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0))
    ax = fig.subplots()
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
    worse = trigger_line(ref_value, drop, metric)
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
