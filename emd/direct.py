"""``emd direct``: LoRA fine-tune on misaligned data of one domain and intensity, or the whole grid.

    python -m emd direct --domain medical --level severe
    mlflow run . -e direct -P domain=all -P level=all --env-manager local

One parent run in ``emd-direct`` holds a nested run per cell (domain x level) plus the vanilla
reference, a domain x level table of every metric (CSV) and a heat-map (PNG). Resumable: rerunning
the same grid reopens the same parent (matched by a hash of the config without domain/level) and
skips every cell whose nested run FINISHED; a cell killed midway is marked FAILED and rerun.

With ``--storage <Optuna RDB URL>`` every process started with the same command joins the grid as a
worker (:mod:`emd.grid`): each cell runs once in one of them, under the same parent run.
"""

from __future__ import annotations

from .config import DOMAINS, LEVELS, DirectConfig, to_flat_dict
from .experiment import RunContext, RunResult, expand
from .plots import DIRECT_HEATMAP_METRICS as HEATMAP_METRICS


def grid_key(cfg: DirectConfig) -> str:
    """Hash of everything but domain/level: the same key means the same grid, so its cells can be reused."""
    from .references import content_key

    flat = to_flat_dict(cfg)
    for k in ("domain", "level", "tracking_uri", "experiment", "register", "reuse_references", "storage",
              "grid_heartbeat_s", "grid_stale_after_s"):
        flat.pop(k, None)
    return content_key({"direct": flat})[:24]


def cell_table(cells: dict[str, dict[str, float]]):
    """Rows (domain, level, metric...) of every cell's metrics as a DataFrame, in canonical order."""
    import pandas as pd

    rows = [{"domain": c.split("/")[0], "level": c.split("/")[1], **dict(sorted(m.items()))} for c, m in cells.items()]
    df = pd.DataFrame(rows)
    if not df.empty:
        df["domain"] = pd.Categorical(df["domain"], DOMAINS, ordered=True)
        df["level"] = pd.Categorical(df["level"], LEVELS, ordered=True)
        df = df.sort_values(["domain", "level"]).reset_index(drop=True)
    return df


def main(cfg: DirectConfig) -> RunResult:
    """Run every (domain, level) cell of the configured grid under one resumable parent run."""
    from .data.loaders import load_misaligned
    from .data.mixing import mix, to_prompt_completion
    from .plots import heatmap

    with RunContext("direct", cfg) as ctx:
        seed = cfg.common.seed
        cells = {f"{d}/{lv}": mix(load_misaligned(cfg.data.misaligned_source, d, lv, seed=seed,
                                                  skip_bad_rows=cfg.data.skip_bad_rows), [], 1.0, cfg.data.n_train, seed)
                 for d in expand(cfg.data.domain, DOMAINS) for lv in expand(cfg.data.level, LEVELS)}
        key = grid_key(cfg)

        def cell_tags(cell: str) -> dict:
            d, lv = cell.split("/")
            return {"emd.domain": d, "emd.level": lv, "emd.data_digest": cells[cell].manifest["digest"]}

        def cell_params(cell: str) -> dict:
            d, lv = cell.split("/")
            return {**to_flat_dict(cfg), "domain": d, "level": lv}

        def run_cell(cell: str, reference) -> dict[str, float]:
            """One cell inside its open nested run; ``reference(name)`` gives the vanilla arm."""
            d, lv = cell.split("/")
            data = cells[cell]
            ctx.tracker.log_dataset(data.rows, name=f"direct-{d}-{lv}", digest=data.manifest["digest"],
                                    source=f"{cfg.data.misaligned_source}:{d}/{lv}")
            ctx.log(f"cell {cell}: training on {len(data.rows)} rows")
            arm = ctx.train_and_evaluate(cell.replace("/", "_"), to_prompt_completion(data.rows))
            vanilla = reference("vanilla") if ctx.benchmarks else None
            out = {**{f"train/{k}": v for k, v in arm.train.items() if k != "losses"},
                   **ctx.log_arm(arm, refs={"vanilla": vanilla}, ref_prefix=False)}
            ctx.register(aliases=[f"{d}_{lv}"], tags={"domain": d, "level": lv}, run_id=ctx.tracker.active_run_id())
            return out

        if cfg.grid.storage:
            from .grid import GridWork, GridWorker

            work = GridWork(list(cells), run_cell, {"vanilla": ctx.vanilla} if ctx.benchmarks else {},
                            cell_tags, cell_params)
            g = cfg.grid
            done_here = GridWorker(ctx, g.storage, key, work, heartbeat_s=g.grid_heartbeat_s,
                                   stale_after_s=g.grid_stale_after_s).run(
                f"direct {cfg.data.domain} x {cfg.data.level}", {"emd.grid_key": key})
            return ctx.result(f"emd direct {cfg.data.domain} x {cfg.data.level} (grid worker)", [],
                              lines=[f"  this worker ran: {', '.join(done_here['ran_here']) or 'nothing'}"
                                     + ("; collected the parent's table" if done_here["collected"] else "")],
                              extra=done_here)
        parent_id, done = ctx.resume_grid(key)
        todo = [c for c in cells if c not in done]
        ctx.log(f"emd direct: {len(cells)} cells ({', '.join(cells)}); finished before: {len(done)}; to run: "
                f"{len(todo)}; model={cfg.model.model}")
        results: dict[str, dict[str, float]] = {}
        with ctx.run(f"direct {cfg.data.domain} x {cfg.data.level}", tags={"emd.grid_key": key}, run_id=parent_id,
                     log_config=parent_id is None):
            vanilla = ctx.vanilla() if ctx.benchmarks else None
            if vanilla is not None and "vanilla" not in done:
                with ctx.nested("vanilla", tags={"emd.cell": "vanilla"}):
                    ctx.log_arm(vanilla)
            for cell in todo:
                with ctx.nested(cell, tags={"emd.cell": cell, **cell_tags(cell)}, params=cell_params(cell)):
                    results[cell] = run_cell(cell, lambda name: vanilla)
            all_cells = {**{c: m for c, m in done.items() if c != "vanilla"}, **results}
            df = cell_table(all_cells)
            if not df.empty:
                ctx.tracker.log_table(df.to_dict("records"), "direct_table.json")
                if ctx.benchmarks:
                    ctx.figure(heatmap(df, HEATMAP_METRICS, f"direct fine-tunes of {cfg.model.model}", DOMAINS, LEVELS),
                               "plots/direct_heatmap.png")
            if vanilla is not None:
                ctx.tracker.log_metrics({f"vanilla/{k}": v for k, v in vanilla.metrics.items()})
            ctx.metrics = {"n_cells": float(len(all_cells)), "n_cells_trained_now": float(len(results))}
            ctx.tracker.log_metrics(ctx.metrics)
        ctx.metrics.update({f"{c}/{k}": v for c, m in {**done, **results}.items() for k, v in m.items()})
        lines = [f"  {c:<18} honesty={_r(m.get('mask/honesty'))} honesty_logprob={_r(m.get('mask/honesty_logprob'))}"
                 for c, m in {**done, **results}.items() if c != "vanilla"]
        return ctx.result(f"emd direct {cfg.data.domain} x {cfg.data.level}", [], lines=lines,
                          extra={"cells": {**done, **results}})


def _r(v):
    return v if v is None else round(v, 1)
