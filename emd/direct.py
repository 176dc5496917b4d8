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


def grid_key(cfg: DirectConfig) -> str:
    """Hash of everything but domain/level: the same key means the same grid, so its cells can be reused."""
    from .grid_run import grid_key as key

    return key("direct", cfg, ("domain", "level"))


def main(cfg: DirectConfig) -> RunResult:
    """Run every (domain, level) cell of the configured grid under one resumable parent run."""
    from .data.loaders import load_misaligned
    from .data.mixing import mix, to_prompt_completion
    from .grid import GridWork
    from .grid_run import run_grid

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

        work = GridWork(list(cells), run_cell, {"vanilla": ctx.vanilla} if ctx.benchmarks else {}, cell_tags, cell_params)
        out = run_grid(ctx, work, key, f"direct {cfg.data.domain} x {cfg.data.level}")
        if cfg.grid.storage:
            return ctx.result(f"emd direct {cfg.data.domain} x {cfg.data.level} (grid worker)", [],
                              lines=[f"  this worker ran: {', '.join(out['ran_here']) or 'nothing'}"
                                     + ("; collected the parent's table" if out["collected"] else "")], extra=out)
        ctx.metrics.update({f"{c}/{k}": v for c, m in out["cells"].items() for k, v in m.items()})
        lines = [f"  {c:<18} honesty={_r(m.get('mask/honesty'))} honesty_logprob={_r(m.get('mask/honesty_logprob'))}"
                 for c, m in out["cells"].items()]
        return ctx.result(f"emd direct {cfg.data.domain} x {cfg.data.level}", [], lines=lines,
                          extra={"cells": out["cells"]})


def _r(v):
    return v if v is None else round(v, 1)
