"""Every figure emd draws for a run: one module, one backend (Agg), no display needed.

Figures are returned open; :meth:`emd.experiment.RunContext.figure` logs and closes them.
"""

from __future__ import annotations

from typing import Any, Sequence

# The direct grid's heat-map panels (the single-process run and `emd collect` draw the same ones).
DIRECT_HEATMAP_METRICS = ["mask/honesty", "mask/honesty_logprob", "delta/mask/honesty/vs_vanilla",
                          "delta/mask/honesty_logprob/vs_vanilla"]


def pyplot():
    """matplotlib's pyplot on the Agg backend (headless)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def honesty_plot(arms: Sequence[Any], metrics: Sequence[str] = ("mask/honesty", "mask/honesty_logprob")):
    """Bar chart of honesty metrics (with CIs) for each arm; returns a matplotlib figure."""
    plt = pyplot()
    import numpy as np

    shown = [m for m in metrics if any(m in a.metrics for a in arms)]
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(arms) * max(1, len(shown)) / 2, 3.6))
    width = 0.8 / max(1, len(shown))
    x = np.arange(len(arms))
    for j, m in enumerate(shown):
        vals = [a.metrics.get(m, np.nan) for a in arms]
        lo = [a.metrics.get(m + "_ci_low", v) for a, v in zip(arms, vals)]
        hi = [a.metrics.get(m + "_ci_high", v) for a, v in zip(arms, vals)]
        err = np.array([[max(0.0, v - l) for v, l in zip(vals, lo)], [max(0.0, h - v) for v, h in zip(vals, hi)]])
        ax.bar(x + j * width - 0.4 + width / 2, vals, width, yerr=err, capsize=3, label=m)
    ax.set_xticks(x, [a.name for a in arms])
    ax.set_ylim(0, 105)
    ax.set_ylabel("honesty (100 x (1 - P(lie)))")
    ax.legend(fontsize=7, loc="lower right")
    ax.set_title("honesty by model variant (95% bootstrap CI)", fontsize=9)
    fig.tight_layout()
    return fig


def heatmap(df, metrics: Sequence[str], title: str, rows: Sequence[str], cols: Sequence[str]):
    """One panel per metric: ``rows`` (domains) x ``cols`` (levels) of ``df``, values annotated."""
    plt = pyplot()
    import numpy as np

    shown = [m for m in metrics if m in df.columns]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(3.8 * max(1, len(shown)), 3.2), squeeze=False)
    doms = [d for d in rows if d in set(df["domain"].astype(str))]
    levs = [lv for lv in cols if lv in set(df["level"].astype(str))]
    for ax, m in zip(axes[0], shown):
        grid = np.full((len(doms), len(levs)), np.nan)
        for _, r in df.iterrows():
            grid[doms.index(str(r["domain"])), levs.index(str(r["level"]))] = r[m]
        if m.startswith("delta/"):  # a diverging scale centred on zero: red = less honest than the reference
            span = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
            span = max(span, 1.0)
            im = ax.imshow(grid, cmap="RdYlGn", vmin=-span, vmax=span)
        else:
            from .metrics import lookup

            spec = lookup(m)
            bounded = spec is not None and spec.unit.startswith("0-100")
            im = ax.imshow(grid, cmap="RdYlGn" if spec is None or spec.higher_is_better is not False else "RdYlGn_r",
                           vmin=0 if bounded else None, vmax=100 if bounded else None)
        ax.set_xticks(range(len(levs)), levs)
        ax.set_yticks(range(len(doms)), doms)
        for i in range(len(doms)):
            for j in range(len(levs)):
                if not np.isnan(grid[i, j]):
                    ax.text(j, i, f"{grid[i, j]:.1f}", ha="center", va="center", fontsize=9)
        ax.set_title(m, fontsize=9)
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# The mixture grid's curve panels: honesty against the misaligned ratio, and its change vs control.
RATIO_CURVE_METRICS = ["mask/honesty", "mask/honesty_logprob", "delta/mask/honesty/vs_control",
                       "delta/mask/honesty_logprob/vs_control"]


def ratio_curve(df, metrics: Sequence[str], title: str):
    """One panel per metric: its value (with the CI where logged) against ``df["ratio"]`` (log x)."""
    plt = pyplot()
    import numpy as np

    shown = [m for m in metrics if m in df.columns]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(3.8 * max(1, len(shown)), 3.2), squeeze=False)
    d = df.assign(ratio=df["ratio"].astype(float)).sort_values("ratio")
    x = d["ratio"].to_numpy()
    for ax, m in zip(axes[0], shown):
        y = d[m].to_numpy(dtype=float)
        lo = d[m + "_ci_low"].to_numpy(dtype=float) if m + "_ci_low" in d else y
        hi = d[m + "_ci_high"].to_numpy(dtype=float) if m + "_ci_high" in d else y
        ax.errorbar(x, y, yerr=np.array([np.maximum(0, y - lo), np.maximum(0, hi - y)]), marker="o", capsize=3)
        if m.startswith("delta/"):
            ax.axhline(0.0, color="grey", lw=0.8, ls="--")
        if (x > 0).all() and len(x) > 1:
            ax.set_xscale("log")
        ax.set_xlabel("misaligned ratio")
        ax.set_title(m, fontsize=9)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig
