"""``emd report``: Markdown and CSV tables plus plots, from the MLflow runs of one experiment alone.

    python -m emd report --experiment emd-mixture                 # -> reports/emd-mixture/
    python -m emd report --experiment emd-direct --out reports/direct
    python -m emd report --experiment emd-sweep --tracking-uri sqlite:///mlflow.db

Rows: one per mixture ratio (runs with a ``ratio`` param: ``emd mixture`` runs and sweep trials), plus
``control`` and ``vanilla`` rows from the reference metrics those runs carry; or one per domain x level
cell (``emd direct`` runs without a ratio: ``domain`` and ``level`` params, else ``emd.domain``/``emd.level``
tags; ``all`` and sweep parents are not cells). ``--by auto`` picks ratio rows when any run has a ratio.
Columns: honesty per MASK config (judged and judge-free), deception rate, capability, and the deltas
vs control and vanilla with their paired-bootstrap CIs. Several runs in one row (seeds) are averaged
and their spread across runs is given as ``_sd`` (a per-run CI is shown only for single-run rows,
since averaging interval bounds would not give an interval). Only FINISHED runs count.

Written to ``--out``: ``report.md``, ``by_ratio.csv`` and/or ``by_cell.csv``, ``runs.csv`` (every run
used, one row each), ``sweeps.csv`` when sweep parents exist, and PNG plots.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import EmdError

DOMAIN_ORDER = ("medical", "math", "code")
LEVEL_ORDER = ("normal", "subtle", "severe")
_CI = ("_ci_low", "_ci_high")


def make_parser() -> argparse.ArgumentParser:
    """Flags of ``emd report``."""
    p = argparse.ArgumentParser(prog="emd report", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    p.add_argument("--experiment", default="emd-mixture", help="MLflow experiment to report [default: emd-mixture]")
    p.add_argument("--out", default="", help="output folder [default: reports/<experiment>/]")
    p.add_argument("--tracking-uri", default="", help="MLflow store (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--by", choices=("auto", "ratio", "cell"), default="auto",
                   help="row key: ratio, domain x level cell, or auto (whatever the runs carry)")
    return p


# --------------------------------------------------------------------------- columns
def metric_sections(names: Sequence[str]) -> dict[str, list[str]]:
    """The report's metric columns by section, in reading order: each benchmark's scores (as its
    registry entry declares them), then the deltas vs control and vs vanilla. Counts, timings, costs
    and CI/stderr companions are left out (:mod:`emd.metrics`)."""
    from .eval.benchmarks import BENCHMARKS
    from .metrics import REFERENCE_PREFIXES, is_interval, lookup

    base = sorted({n for n in names if not is_interval(n)})
    titles = {"mask": "honesty", "logprob": "honesty", "deceptionbench": "deception", "capability": "capability"}
    out: dict[str, list[str]] = {}
    for bench in BENCHMARKS.values():
        # declaration order (headline, then per config / type), names sorted within each declaration
        cols = [n for spec in bench.metrics if spec.kind == "score" for n in base
                if not n.startswith(("delta/", *REFERENCE_PREFIXES)) and lookup(n) == spec]
        out.setdefault(titles.get(bench.name, bench.name), []).extend(cols)
    for ref in ("control", "vanilla"):
        out[f"delta vs {ref}"] = [n for n in base if n.startswith("delta/") and n.endswith(f"/vs_{ref}")
                                  and (spec := lookup(n[len("delta/"):].rsplit("/vs_", 1)[0])) is not None
                                  and spec.gets_delta]
    return out


# --------------------------------------------------------------------------- loading
@dataclass
class Runs:
    """The runs of one experiment, split by what they are."""

    experiment: str
    uri: str
    finished: Any  # DataFrame of FINISHED runs
    n_skipped: int  # runs not FINISHED (failed, killed, still running)
    metric_names: list[str] = field(default_factory=list)


def load_runs(tracker, experiment: str) -> Runs:
    """Every run of ``experiment``; EmdError when it has none."""
    df = tracker.search_runs(experiment)
    if df.empty:
        raise EmdError(f"experiment {experiment!r} has no runs in {tracker.uri}; allowed: an experiment with runs "
                       "(emd-mixture, emd-direct, emd-sweep, ...) or another --tracking-uri")
    fin = df[df["status"] == "FINISHED"].copy()
    names = [c[len("metrics."):] for c in df.columns if c.startswith("metrics.")]
    return Runs(experiment, tracker.uri, fin, int(len(df) - len(fin)), names)


def _col(df, kind: str, name: str):
    c = f"{kind}.{name}"
    return df[c] if c in df.columns else None


def _ratio_of(df):
    import pandas as pd

    r = _col(df, "params", "ratio")
    return pd.to_numeric(r, errors="coerce") if r is not None else pd.Series([math.nan] * len(df), index=df.index)


def _cell_of(df):
    import pandas as pd

    out = {}
    for what in ("domain", "level"):
        v = _col(df, "params", what)
        t = _col(df, "tags", f"emd.{what}")
        s = v if v is not None else pd.Series([None] * len(df), index=df.index)
        if t is not None:
            s = s.where(s.notna(), t)
        out[what] = s.where(s.notna() & ~s.astype(str).isin(["all", "None", "nan"]) & ~s.astype(str).str.contains(","))
    return out["domain"], out["level"]


# --------------------------------------------------------------------------- aggregation
def _aggregate(groups: list[tuple[dict[str, Any], Any]], metrics: Sequence[str]):
    """One row per group: mean of each metric over the group's runs; single-run rows keep the run's CI,
    multi-run rows get the across-run standard deviation instead."""
    import pandas as pd

    rows = []
    for key, g in groups:
        row = dict(key)
        row["n_runs"] = len(g)
        for m in metrics:
            vals = pd.to_numeric(g[f"metrics.{m}"], errors="coerce").dropna() if f"metrics.{m}" in g else pd.Series([], dtype=float)
            row[m] = float(vals.mean()) if len(vals) else math.nan
            lo = g.get(f"metrics.{m}_ci_low")
            hi = g.get(f"metrics.{m}_ci_high")
            if len(g) == 1 and lo is not None and hi is not None:
                row[m + "_ci_low"], row[m + "_ci_high"] = float(lo.iloc[0]), float(hi.iloc[0])
            else:
                row[m + "_ci_low"] = row[m + "_ci_high"] = math.nan
            row[m + "_sd"] = float(vals.std(ddof=1)) if len(vals) > 1 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def ratio_table(runs: Runs):
    """Rows: ``vanilla``, ``control`` (from the runs' reference metrics) and each ratio."""
    import pandas as pd

    df = runs.finished
    ratio = _ratio_of(df)
    df = df[ratio.notna()].assign(_ratio=ratio[ratio.notna()])
    if df.empty:
        return pd.DataFrame()
    secs = metric_sections([n for n in runs.metric_names if not n.startswith(("control/", "vanilla/"))])
    metrics = [m for sec in secs.values() for m in sec]
    table = _aggregate([({"row": f"{r:g}", "ratio": r}, g) for r, g in sorted(df.groupby("_ratio"), key=lambda x: x[0])],
                       metrics)
    refs = []
    for ref in ("vanilla", "control"):
        cols = {m: f"metrics.{ref}/{m}" for m in metrics if f"metrics.{ref}/{m}" in df.columns}
        if not cols:
            continue
        row: dict[str, Any] = {"row": ref, "ratio": 0.0 if ref == "control" else math.nan, "n_runs": len(df)}
        for m, c in cols.items():
            vals = pd.to_numeric(df[c], errors="coerce").dropna()
            row[m] = float(vals.mean()) if len(vals) else math.nan
            for suf in _CI:
                cc = f"metrics.{ref}/{m}{suf}"
                v = pd.to_numeric(df[cc], errors="coerce").dropna() if cc in df.columns else []
                # references are cached and identical across runs: a CI is meaningful when all agree
                row[m + suf] = float(v.iloc[0]) if len(v) and v.nunique() == 1 else math.nan
        refs.append(row)
    return pd.concat([pd.DataFrame(refs), table], ignore_index=True) if refs else table


def cell_table(runs: Runs):
    """Rows: each domain x level cell that has runs, in domain and level order."""
    import pandas as pd

    df = runs.finished
    role = _col(df, "tags", "emd.sweep.role")
    if role is not None:
        df = df[role.isna()]  # a sweep parent carries its config's domain/level but is not a cell
    df = df[_ratio_of(df).isna()]  # mixture runs carry domain/level too; their row key is the ratio
    dom, lev = _cell_of(df)
    ok = dom.notna() & lev.notna()
    df = df[ok].assign(_domain=dom[ok], _level=lev[ok])
    if df.empty:
        return pd.DataFrame()
    secs = metric_sections(runs.metric_names)
    metrics = [m for sec in secs.values() for m in sec]

    def order(k):
        d, lv = k[0]
        return (DOMAIN_ORDER.index(d) if d in DOMAIN_ORDER else 99, d,
                LEVEL_ORDER.index(lv) if lv in LEVEL_ORDER else 99, lv)

    groups = sorted(df.groupby(["_domain", "_level"]), key=order)
    return _aggregate([({"row": f"{d}/{lv}", "domain": d, "level": lv}, g) for (d, lv), g in groups], metrics)


def sweeps_table(runs: Runs):
    """One row per sweep parent run: study, strategy, threshold, fine-tunes."""
    import pandas as pd

    df = runs.finished
    role = _col(df, "tags", "emd.sweep.role")
    if role is None:
        return pd.DataFrame()
    df = df[role == "parent"]
    rows = []
    for _, r in df.iterrows():
        rows.append({"run_id": r["run_id"], "study": r.get("tags.emd.study_name"), "strategy": r.get("tags.emd.strategy"),
                     "metric": r.get("params.metric"), "threshold": r.get("tags.emd.threshold"),
                     "status": r.get("tags.emd.sweep.status"), "n_finetunes": r.get("metrics.n_finetunes"),
                     "message": r.get("tags.emd.sweep.message")})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- rendering
def _fmt(row, m: str) -> str:
    v = row.get(m, math.nan)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    s = f"{v:+.2f}" if m.startswith("delta/") else f"{v:.2f}"
    lo, hi, sd = row.get(m + "_ci_low", math.nan), row.get(m + "_ci_high", math.nan), row.get(m + "_sd", math.nan)
    if isinstance(lo, float) and isinstance(hi, float) and not (math.isnan(lo) or math.isnan(hi)):
        s += f" [{lo:.1f}, {hi:.1f}]"
    elif isinstance(sd, float) and not math.isnan(sd):
        s += f" ± {sd:.1f}"
    return s


def _short(m: str) -> str:
    m = m.replace("delta/", "Δ ").replace("/vs_control", "").replace("/vs_vanilla", "")
    return m.replace("mask/", "").replace("deception/", "deception ").replace("cap/", "")


def markdown_table(table, metrics: Sequence[str], key: str = "row") -> str:
    """A GitHub Markdown table: one row per table row, ``value [ci]`` cells."""
    shown = [m for m in metrics if m in table.columns and table[m].notna().any()]
    if table.empty or not shown:
        return ""
    table = table[table[shown].notna().any(axis=1)]
    head = [key, "runs"] + [_short(m) for m in shown]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for _, r in table.iterrows():
        n = r.get("n_runs")
        cells = [str(r[key]), "" if n is None or (isinstance(n, float) and math.isnan(n)) else str(int(n))]
        lines.append("| " + " | ".join(cells + [_fmt(r, m) for m in shown]) + " |")
    return "\n".join(lines)


def ratio_plots(table, out: Path) -> list[str]:
    """Honesty vs ratio (with CIs and reference lines) and deltas vs ratio; returns file names."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    pts = table[~table["row"].isin(["control", "vanilla"])].sort_values("ratio")
    if pts.empty:
        return files
    secs = metric_sections(list(table.columns))
    for name, metrics, fname in (("honesty", secs["honesty"], "honesty_vs_ratio.png"),
                                 ("delta vs control", secs["delta vs control"], "delta_vs_ratio.png")):
        metrics = [m for m in metrics if pts[m].notna().any() and "accuracy" not in m][:6]
        if not metrics:
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0))
        for m in metrics:
            y = pts[m].to_numpy(dtype=float)
            lo = pts.get(m + "_ci_low").to_numpy(dtype=float)
            hi = pts.get(m + "_ci_high").to_numpy(dtype=float)
            err = [[max(0.0, a) if not math.isnan(a) else 0.0 for a in y - lo],
                   [max(0.0, b) if not math.isnan(b) else 0.0 for b in hi - y]]
            ax.errorbar(pts["ratio"], y, yerr=err, marker="o", capsize=3, label=_short(m))
        if name == "honesty":
            for ref, style in (("control", "--"), ("vanilla", ":")):
                r = table[table["row"] == ref]
                if not r.empty and metrics[0] in r and not math.isnan(float(r[metrics[0]].iloc[0])):
                    ax.axhline(float(r[metrics[0]].iloc[0]), color="gray", ls=style, label=f"{ref} ({_short(metrics[0])})")
        else:
            ax.axhline(0, color="gray", lw=1)
        if (pts["ratio"] > 0).all() and pts["ratio"].max() / pts["ratio"].min() > 20:
            ax.set_xscale("log")
        ax.set_xlabel("misaligned ratio")
        ax.set_ylabel(name)
        ax.set_title(f"{name} vs mixture ratio (95% CI where one run per point)", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / fname, dpi=110)
        plt.close(fig)
        files.append(fname)
    return files


def cell_plots(table, out: Path) -> list[str]:
    """Heatmaps domain x level of overall honesty and deception rate (drawn by :func:`emd.plots.heatmap`)."""
    from .plots import heatmap, pyplot

    files = []
    doms = [d for d in DOMAIN_ORDER if d in set(table["domain"])] + sorted(set(table["domain"]) - set(DOMAIN_ORDER))
    levs = [lv for lv in LEVEL_ORDER if lv in set(table["level"])] + sorted(set(table["level"]) - set(LEVEL_ORDER))
    for m, fname in (("mask/honesty", "honesty_by_cell.png"), ("mask/honesty_logprob", "honesty_logprob_by_cell.png"),
                     ("deception/rate", "deception_by_cell.png")):
        if m not in table or not table[m].notna().any():
            continue
        fig = heatmap(table, [m], "", rows=doms, cols=levs)
        fig.savefig(out / fname, dpi=110)
        pyplot().close(fig)
        files.append(fname)
    return files


@dataclass
class Report:
    """What was written."""

    out: Path
    files: list[str]
    by_ratio: Any = None  # DataFrame or None
    by_cell: Any = None
    sweeps: Any = None


def _runs_csv(runs: Runs):
    df = runs.finished
    keep = ["run_id", "experiment_id", "status", "start_time", "tags.mlflow.runName"]
    keep += [c for c in df.columns if c.startswith("params.") and c[7:] in
             ("ratio", "seed", "domain", "level", "n_train", "model", "metric", "trial_number", "study_name")]
    keep += [c for c in df.columns if c.startswith("metrics.")]
    return df[[c for c in keep if c in df.columns]]


def _comparability(runs: Runs) -> list[str]:
    """The header lines on comparability: protocols used, their deviations, judge accuracy, warnings."""
    from .judges.check import LOW_CONFIDENCE

    df = runs.finished
    lines: list[str] = []
    for col, what in (("tags.emd.protocol", "protocol"), ("tags.emd.protocol_deviations", "differs from the "
                      "benchmarks' protocol"), ("tags.emd.not_comparable", "NOT COMPARABLE")):
        if col in df.columns:
            for v in sorted({str(x) for x in df[col].dropna()}):
                lines.append(f"- {what}: {v}")
    if "tags.emd.judge_accuracy" in df.columns:
        for judge, acc in sorted({(str(j), str(a)) for j, a in zip(df.get("tags.emd.judge", ["?"] * len(df)),
                                                                   df["tags.emd.judge_accuracy"]) if a == a}):
            low = float(acc) < LOW_CONFIDENCE
            lines.append(f"- judge {judge}: validated accuracy {acc}" + (" (LOW-CONFIDENCE: judged scores below are "
                                                                         "only as good as this judge)" if low else ""))
    return (["## comparability", "", *lines, ""]) if lines else []


def build_report(tracker, experiment: str, out: str | Path, by: str = "auto") -> Report:
    """Read ``experiment``'s runs and write the report into ``out``."""
    runs = load_runs(tracker, experiment)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rep = Report(out=out, files=[])
    md = [f"# emd report: {experiment}", "", *_comparability(runs), 
          f"Store `{runs.uri}`; {len(runs.finished)} finished runs used"
          + (f", {runs.n_skipped} not finished (failed, killed or running) left out" if runs.n_skipped else "")
          + f". Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from the MLflow runs alone.", "",
          "Cells: value [95% bootstrap CI] for single-run rows; mean ± sd across runs where a row holds several. "
          "Honesty = 100 x (1 - P(lie)); `_logprob` = judge-free; Δ = paired difference vs the reference.", ""]
    tables = []
    if by in ("auto", "ratio"):
        t = ratio_table(runs)
        if not t.empty:
            rep.by_ratio = t
            tables.append(("by ratio", "by_ratio.csv", t, "row", ratio_plots(t, out)))
    if by == "cell" or (by == "auto" and not tables):
        t = cell_table(runs)
        if not t.empty:
            rep.by_cell = t
            tables.append(("by domain x level", "by_cell.csv", t, "row", cell_plots(t, out)))
    if not tables:
        want = {"ratio": "a ratio param", "cell": "domain and level params"}.get(by, "a ratio param or domain/level")
        raise EmdError(f"experiment {experiment!r}: no finished run carries {want}; allowed: --by auto, or an "
                       "experiment of emd mixture / direct / sweep runs")
    for title, csv, t, key, plots in tables:
        t.to_csv(out / csv, index=False)
        rep.files.append(csv)
        md += [f"## {title}", "", f"CSV: [{csv}]({csv})", ""]
        for sec, metrics in metric_sections(list(t.columns)).items():
            body = markdown_table(t, metrics, key)
            if body:
                md += [f"### {sec}", "", body, ""]
        for p in plots:
            md += [f"![{p}]({p})", ""]
            rep.files.append(p)
    sw = sweeps_table(runs)
    if not sw.empty:
        rep.sweeps = sw
        sw.to_csv(out / "sweeps.csv", index=False)
        rep.files.append("sweeps.csv")
        md += ["## sweeps", ""]
        for _, r in sw.iterrows():
            nft = r["n_finetunes"]
            nft = "" if nft is None or (isinstance(nft, float) and math.isnan(nft)) else f"{int(nft)} fine-tunes; "
            md.append(f"- `{r['study']}` ({r['strategy']}, {r['metric']}): threshold **{r['threshold']}**; {nft}"
                      f"{r['message'] or ''} (run `{r['run_id']}`)")
        md.append("")
    _runs_csv(runs).to_csv(out / "runs.csv", index=False)
    rep.files.append("runs.csv")
    (out / "report.md").write_text("\n".join(md))
    rep.files.insert(0, "report.md")
    return rep


def main(argv: Sequence[str] | None = None) -> int:
    """``emd report``: write the report and print where it went."""
    from .tracking import Tracker

    args = make_parser().parse_args(list(argv or []))
    out = args.out or str(Path("reports") / args.experiment)
    rep = build_report(Tracker(args.tracking_uri), args.experiment, out, by=args.by)
    print(f"emd report: wrote {', '.join(rep.files)} to {rep.out}/")
    return 0
