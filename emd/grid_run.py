"""The one grid skeleton of the grid entries (``direct``, ``mixture --ratio a,b,c``): a parent run with
a nested run per reference and per cell, then the parent's table and plots (:mod:`emd.grid_collect`).

Without ``--storage`` the grid runs in this process and is resumable: rerunning the same command
reopens the parent (found by its ``emd.grid_key`` tag) and runs only the cells with no FINISHED
nested run. With ``--storage <Optuna RDB URL>`` this process is one worker of the grid
(:class:`emd.grid.GridWorker`); every process started with the same command joins the same grid.
"""

from __future__ import annotations

from typing import Any

from .grid import GridWork

# Keys that never change what a cell computes: two commands differing only in these are one grid.
NOT_IN_KEY = ("tracking_uri", "experiment", "register", "reuse_references", "storage", "grid_heartbeat_s",
              "grid_stale_after_s", "share_verdicts")


def grid_key(entry: str, cfg: Any, cell_keys: tuple[str, ...]) -> str:
    """Hash of the config without the keys that pick the cells (``cell_keys``) or only say where
    results go: the same key means the same grid, so its finished cells are reused."""
    from .config import to_flat_dict
    from .references import content_key

    flat = {k: v for k, v in to_flat_dict(cfg).items() if k not in (*cell_keys, *NOT_IN_KEY)}
    return content_key({entry: flat})[:24]


def run_grid(ctx, work: GridWork, key: str, run_name: str) -> dict[str, Any]:
    """Run ``work`` as one grid (locally, or as a worker when ``ctx.cfg.grid.storage`` is set).

    Returns ``parent_run_id``, ``ran_here`` (what this process ran), ``cells`` (cell -> metrics of
    every FINISHED cell known to this process) and, for workers, ``collected``/``study``."""
    g = ctx.cfg.grid
    tags = {"emd.grid_key": key}
    if g.storage:
        from .grid import GridWorker

        out = GridWorker(ctx, g.storage, key, work, heartbeat_s=g.grid_heartbeat_s,
                         stale_after_s=g.grid_stale_after_s).run(run_name, tags)
        return {**out, "cells": {}}
    return _run_local(ctx, work, key, run_name, tags)


def _run_local(ctx, work: GridWork, key: str, run_name: str, tags: dict) -> dict[str, Any]:
    from .grid_collect import collect

    parent_id, done = ctx.resume_grid(key)
    todo = [c for c in work.cells if c not in done]
    ctx.log(f"emd {ctx.entry}: {len(work.cells)} cells ({', '.join(work.cells)}); finished before: "
            f"{len([c for c in work.cells if c in done])}; to run: {len(todo)}; model={ctx.cfg.model.model}")
    results: dict[str, dict] = {}
    ran: list[str] = []
    with ctx.run(run_name, tags={**tags, "emd.grid_role": "parent", "emd.grid_cells": ",".join(work.cells)},
                 run_id=parent_id, log_config=parent_id is None):
        refs: dict[str, Any] = {}
        for name, compute in work.references.items():
            refs[name] = compute()
            if name not in done:
                with ctx.nested(name, tags={"emd.cell": name, "emd.grid_reference": "1"}):
                    ctx.log_arm(refs[name])
                ran.append(name)
        for cell in todo:
            with ctx.nested(cell, tags={"emd.cell": cell, **work.cell_tags(cell)}, params=work.cell_params(cell)):
                results[cell] = work.run_cell(cell, refs.__getitem__)
            ran.append(cell)
        collect(ctx.tracker, ctx.experiment, ctx.run_id, log=ctx.log, active=True)
        ctx.metrics = {"n_cells": float(len(work.cells)), "n_cells_trained_now": float(len(results))}
        ctx.tracker.log_metrics(ctx.metrics)
        parent_id = ctx.run_id
    cells = {**{c: m for c, m in done.items() if c in work.cells}, **results}
    return {"parent_run_id": parent_id, "ran_here": ran, "cells": cells, "collected": True}
