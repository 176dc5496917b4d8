"""``emd interaction --storage <Optuna RDB URL>``: the (biased ratio x method) grid run by worker processes.

Every process started with the same command joins one grid (:class:`emd.grid.GridWorker`), with the
same MLflow layout as the single-process run (:mod:`emd.interaction.run`) plus a nested ``vanilla``
reference run:

- ``vanilla``: the base model's benchmarks and probe, computed once; every cell compares with it;
- one cell per (ratio, method), named like its run (``ratio=0.5 sft``). A ratio-0 cell is the control
  of the cells of its method: they need it (their ``vs_control`` deltas read its round arms), so a
  worker takes them only once it is done, or waits when nothing else is free;
- ``collect``: the parent's grid table, plots and curves from the cells' ``tables/rounds.json``
  (:func:`collect`), by whichever worker finishes last.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from . import rounds


def run(ctx, env, ratios: list[float], methods: list[str], run_name: str, parent_tags: dict) -> dict:
    """This process as one worker of the grid; returns what it ran (``cells``: their results)."""
    from ..grid import GridWork, GridWorker
    from ..grid_run import grid_key
    from ..pipeline import Arm

    cells = {rounds.cell_name(r, m): (r, m) for r in ratios for m in methods}
    control = {m: rounds.cell_name(0.0, m) for m in methods if 0.0 in ratios}
    results: dict[str, dict] = {}

    def vanilla() -> Arm:
        arm = ctx.vanilla() if ctx.benchmarks else Arm(name="vanilla")
        pm, pitems, ptable = rounds.probe(env, None, "vanilla")
        arm.metrics.update(pm)
        arm.item_scores.update(pitems)
        ctx.tracker.log_table(ptable, "trajectories/vanilla_probe.json")  # the parent run is the open one
        return arm

    def needs(cell: str) -> list[str]:
        r, m = cells[cell]
        return [control[m]] if r > 0 and m in control else []

    def run_cell(cell: str, reference: Callable) -> dict:
        r, m = cells[cell]
        env.vanilla = reference("vanilla")
        for dep in needs(cell):
            env.controls.update(reference(dep))
        results[cell] = rounds.cell_body(env, r, m, ctx.tracker.active_run_id())
        return results[cell]["rounds"][-1].metrics

    def product(cell: str) -> dict:
        """A control cell's round arms (what ``vs_control`` reads)."""
        m = cells[cell][1]
        return {str(rnd): arm.to_json() for (mm, rnd), arm in env.controls.items() if mm == m}

    def decode(cell: str, data: dict) -> dict:
        return {(cells[cell][1], int(rnd)): Arm.from_json(a) for rnd, a in data.items()}

    work = GridWork(list(cells), run_cell, {"vanilla": vanilla},
                    cell_tags=lambda c: rounds.cell_tags(*cells[c]),
                    cell_params=lambda c: rounds.cell_params(env, *cells[c]),
                    needs=needs, product=product, decode=decode, collect=collect)
    g = ctx.cfg.grid
    out = GridWorker(ctx, g.storage, grid_key("interaction", ctx.cfg, ("biased_ratio", "method")), work,
                     heartbeat_s=g.grid_heartbeat_s, stale_after_s=g.grid_stale_after_s).run(run_name, parent_tags)
    return {**out, "cells": [results[c] for c in cells if c in results]}


def _table(tracker, run_id: str, artifact: str) -> list[dict]:
    path = tracker.download(f"runs:/{run_id}/{artifact}")
    data = json.loads(Path(path).read_text())
    return [dict(zip(data["columns"], row)) for row in data["data"]]


def collect(tracker, experiment: str, parent_id: str, log: Callable[[str], None] = print, active: bool = True):
    """The parent's ``tables/grid.json``, ``plots/grid.png``, ``plots/rounds.png``, per-cell curves
    (step = round) and ``vanilla/`` metrics, from its FINISHED cell runs; returns the grid table."""
    import matplotlib.pyplot as plt

    from ..grid_collect import children
    from .plots import grid_figure, rounds_figure

    kids = children(tracker, experiment, parent_id)
    vanilla = kids.get("vanilla", {}).get("metrics", {})
    rows = [row for c, k in kids.items() if k["tags"].get("emd.level") == "cell"
            for row in _table(tracker, k["run_id"], "tables/rounds.json")]
    rows.sort(key=lambda r: (float(r["biased_ratio"]), r["method"], int(r["round"])))
    table = [r for r in rows if int(r["round"]) > 0]
    tracker.log_table(table, "tables/grid.json")
    last = {}
    for r in table:
        last[(r["biased_ratio"], r["method"])] = r  # sorted by round: the final round wins
    for name, fig in (("grid", grid_figure(list(last.values()), vanilla)), ("rounds", rounds_figure(rows, vanilla))):
        tracker.log_figure(fig, f"plots/{name}.png")
        plt.close(fig)
    for r in table:
        tracker.log_metrics({f"{r['method']}/ratio_{float(r['biased_ratio']):g}/{k}": float(r[k])
                             for k in rounds.KEY_METRICS if isinstance(r.get(k), (int, float)) and r[k] == r[k]}, step=int(r["round"]))
    tracker.log_metrics({f"vanilla/{k}": v for k, v in vanilla.items()})
    tracker.log_metrics({"n_cells": float(len(last))})
    log(f"collect: parent {parent_id}: {len(last)} interaction cells, {len(table)} rounds")
    return table
