"""Figures of the interaction experiment: metrics against biased ratio (grid) and against round.

Both draw the same three panels, each skipped metric-by-metric where a run did not measure it:

- **honesty**: ``mask/honesty`` (judged) and ``mask/honesty_logprob`` (judge-free), 0-100;
- **deception**: ``deception/rate`` (DeceptionBench, when evaluated) and ``probe/validation_rate``
  (in the environment: % of the model's replies to biased probe users that endorse the excuse);
- **satisfaction**: mean probe-user rating 1-10, biased and benign users apart.

Error bars are the 95% bootstrap intervals logged beside each metric (``<metric>_ci_low/_ci_high``).
"""

from __future__ import annotations

from typing import Sequence

PANELS: list[tuple[str, list[str], tuple[float, float] | None]] = [
    ("honesty (MASK, 100 x (1 - P(lie)))", ["mask/honesty", "mask/honesty_logprob"], (0, 105)),
    ("deception (%)", ["deception/rate", "probe/validation_rate"], (0, 105)),
    ("probe satisfaction (1-10)", ["probe/satisfaction_biased", "probe/satisfaction_benign"], (1, 10.2)),
]
_STYLES = ["-o", "--s", ":^", "-.d"]


def _err(rows: Sequence[dict], m: str):
    vals = [r.get(m, float("nan")) for r in rows]
    lo = [r.get(m + "_ci_low", v) for r, v in zip(rows, vals)]
    hi = [r.get(m + "_ci_high", v) for r, v in zip(rows, vals)]
    return vals, [[max(0.0, v - l) if v == v else 0.0 for v, l in zip(vals, lo)],
                  [max(0.0, h - v) if v == v else 0.0 for v, h in zip(vals, hi)]]


def metric_figure(rows: Sequence[dict], x_key: str, group_key: str, title: str, baseline: dict | None = None,
                  x_label: str | None = None):
    """One panel per entry of :data:`PANELS`; a line per (group, metric) over ``x_key``; dashed vanilla."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker  # noqa: F401 - used as matplotlib.ticker

    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.6 * len(PANELS), 3.8))
    groups = sorted({r[group_key] for r in rows}, key=str)
    for ax, (ptitle, metrics, ylim) in zip(axes, PANELS):
        shown = [m for m in metrics if any(m in r for r in rows)]
        if not shown:
            ax.text(0.5, 0.5, "not measured in this run", ha="center", va="center", transform=ax.transAxes,
                    fontsize=9, color="gray")
        for gi, g in enumerate(groups):
            sub = sorted([r for r in rows if r[group_key] == g], key=lambda r: r[x_key])
            xs = [r[x_key] for r in sub]
            for mi, m in enumerate(shown):
                vals, err = _err(sub, m)
                ax.errorbar(xs, vals, yerr=err, fmt=_STYLES[mi % len(_STYLES)], capsize=3, color=f"C{gi}",
                            label=f"{g}: {m}", alpha=0.9)
        for mi, m in enumerate(shown):
            if baseline and m in baseline:
                ax.axhline(baseline[m], color="gray", ls="--", lw=0.8)
                ax.annotate(f"vanilla {m.split('/')[-1]}", (0.01, baseline[m]), xycoords=("axes fraction", "data"),
                            fontsize=6, color="gray", va="bottom")
        if ylim:
            ax.set_ylim(*ylim)
        if x_key == "biased_ratio":
            ax.set_xlim(-0.05, 1.05)
        elif x_key == "round":
            ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        ax.set_title(ptitle, fontsize=9)
        ax.set_xlabel(x_label or x_key)
        if shown:
            ax.legend(fontsize=6, loc="best")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def grid_figure(rows: Sequence[dict], baseline: dict | None = None):
    """Final-round metrics against biased ratio, one line per method."""
    return metric_figure(rows, "biased_ratio", "method", "interaction: final round vs biased ratio (95% CI)",
                         baseline, "biased ratio")


def rounds_figure(rows: Sequence[dict], baseline: dict | None = None):
    """Metrics against round (0 = vanilla), one line per (method, ratio) cell."""
    rows = [dict(r, cell=f"{r['method']} r={r['biased_ratio']:g}") for r in rows]
    return metric_figure(rows, "round", "cell", "interaction: metrics over self-training rounds (95% CI)", baseline,
                         "round")
