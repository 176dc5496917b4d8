"""``emd collect``: a grid parent run's table and plots, built from its FINISHED nested runs.

    python -m emd collect --experiment emd-direct [--run-id <parent>] [--tracking-uri http://...]

The last grid worker (:mod:`emd.grid`) calls :func:`collect` itself; this command does it on demand,
e.g. to see a partial table while workers still run (the parent then ends FAILED with the missing
cells named, exit 3, until a worker completes it).
"""

from __future__ import annotations

import argparse
from typing import Callable, Sequence

from .metrics import MetricSpec, declare

COLLECT_METRICS = declare(
    MetricSpec("n_cells_missing", "count", None, "cells", "grid cells of a parent run with no FINISHED nested run"),
)
REFERENCE_NAMES = ("vanilla", "control")
_DIMS = ("domain", "level", "ratio")


def children(tracker, experiment: str, parent_id: str) -> dict[str, dict]:
    """cell -> {"metrics", "tags", "run_id"} of the newest FINISHED nested run of each cell."""
    df = tracker.search_runs(experiment, filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and "
                                                       "attributes.status = 'FINISHED'",
                             order_by=["attributes.start_time DESC"])
    out: dict[str, dict] = {}
    for _, r in df.iterrows():
        cell = r.get("tags.emd.cell")
        if not isinstance(cell, str) or cell in out:
            continue
        out[cell] = {"run_id": r["run_id"],
                     "metrics": {k[len("metrics."):]: float(v) for k, v in r.items() if k.startswith("metrics.") and v == v},
                     "tags": {k[len("tags."):]: v for k, v in r.items() if k.startswith("tags.") and isinstance(v, str)}}
    return out


def _row(cell: str, kid: dict) -> dict:
    tags = kid["tags"]
    dims = {d: tags[f"emd.{d}"] for d in _DIMS if f"emd.{d}" in tags}
    if not dims and "/" in cell:
        dims = dict(zip(("domain", "level"), cell.split("/", 1)))
    return {**dims, **dict(sorted(kid["metrics"].items()))}


def collect(tracker, experiment: str, parent_id: str, log: Callable[[str], None] = print, active: bool = False):
    """Log the parent's ``<entry>_table.json`` (and, for domain x level grids, the heat-map) from its
    FINISHED children, and the references' metrics as ``<ref>/<metric>``; returns (table, missing cells).

    ``active``: the parent is the open run of this process; otherwise it is reopened here and, when
    cells are missing, ends FAILED (:class:`emd.grid.IncompleteGridError`)."""
    import contextlib

    import pandas as pd

    from .config import DOMAINS, LEVELS
    from .grid import IncompleteGridError
    from .plots import DIRECT_HEATMAP_METRICS, RATIO_CURVE_METRICS, heatmap, ratio_curve

    parent = tracker.get_run(parent_id)
    entry = parent.data.tags.get("emd.entry", "grid")
    expected = [c for c in parent.data.tags.get("emd.grid_cells", "").split(",") if c]
    kids = children(tracker, experiment, parent_id)
    refs = {c: k for c, k in kids.items() if c in REFERENCE_NAMES or k["tags"].get("emd.grid_reference") == "1"}
    cells = {c: k for c, k in kids.items() if c not in refs}
    order = expected + sorted(c for c in cells if c not in expected)
    missing = [c for c in expected if c not in cells]
    df = pd.DataFrame([_row(c, cells[c]) for c in order if c in cells])
    if "ratio" in df.columns:
        df = df.assign(ratio=df["ratio"].astype(float)).sort_values("ratio").reset_index(drop=True)
    if {"domain", "level"} <= set(df.columns):
        df["domain"] = pd.Categorical(df["domain"], DOMAINS, ordered=True)
        df["level"] = pd.Categorical(df["level"], LEVELS, ordered=True)
        df = df.sort_values(["domain", "level"]).reset_index(drop=True)
    run = contextlib.nullcontext() if active else tracker.run(experiment, run_id=parent_id)
    with run:
        if not df.empty:
            tracker.log_table(df.to_dict("records"), f"{entry}_table.json")
            if {"domain", "level"} <= set(df.columns) and any(m in df.columns for m in DIRECT_HEATMAP_METRICS):
                import matplotlib.pyplot as plt

                fig = heatmap(df, DIRECT_HEATMAP_METRICS, f"{entry} fine-tunes of {parent.data.tags.get('emd.base_model', '')}",
                              DOMAINS, LEVELS)
                tracker.log_figure(fig, f"plots/{entry}_heatmap.png")
                plt.close(fig)
            if "ratio" in df.columns and any(m in df.columns for m in RATIO_CURVE_METRICS):
                import matplotlib.pyplot as plt

                fig = ratio_curve(df, RATIO_CURVE_METRICS, f"{entry} of {parent.data.tags.get('emd.base_model', '')}")
                tracker.log_figure(fig, f"plots/{entry}_ratios.png")
                plt.close(fig)
        for name, k in refs.items():
            tracker.log_metrics({f"{name}/{m}": v for m, v in k["metrics"].items()})
        tracker.log_metrics({"n_cells": float(len(cells)), "n_cells_missing": float(len(missing))})
        log(f"collect: parent {parent_id}: {len(cells)} cells FINISHED"
            + (f", missing {', '.join(missing)}" if missing else "") + f"; references {', '.join(refs) or 'none'}")
        if missing and not active:
            raise IncompleteGridError(f"parent run {parent_id}: no FINISHED run yet for {', '.join(missing)}; the "
                                      "workers (or a rerun of the same command with the same --storage) finish them")
    return df, missing


def make_parser() -> argparse.ArgumentParser:
    """``emd collect`` flags."""
    p = argparse.ArgumentParser(prog="emd collect", description="log a grid parent run's table from its nested runs")
    p.add_argument("--experiment", required=True, help="MLflow experiment of the grid (e.g. emd-direct)")
    p.add_argument("--run-id", default="", help="the parent run (default: the newest grid parent of the experiment)")
    p.add_argument("--tracking-uri", default="", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """``emd collect``: collect one grid parent run; prints its table."""
    from .errors import EmdError
    from .tracking import Tracker

    args = make_parser().parse_args(list(argv or []))
    tracker = Tracker(args.tracking_uri)
    parent = args.run_id
    if not parent:
        df = tracker.search_runs(args.experiment, filter_string="tags.`emd.grid_role` = 'parent'",
                                 order_by=["attributes.start_time DESC"])
        if df.empty:
            raise EmdError(f"experiment={args.experiment!r} has no grid parent run (tag emd.grid_role=parent); allowed: "
                           "an experiment a grid with --storage ran in, or --run-id <parent run id>")
        parent = df.iloc[0]["run_id"]
    table, _ = collect(tracker, args.experiment, parent)
    print(table.to_string(max_cols=8) if not table.empty else "(no finished cells)")
    return 0
