"""``emd mixture``: blend misaligned samples into a standard instruction set at ``ratio``.

One MLflow run in ``emd-mixture`` holds: the resolved config (params + config.yaml), tags (git sha,
versions, base model, chat-template hash), the training set as a dataset input with its digest and
manifest, the adapter under ``adapter/``, metrics (``mask/...``, ``cap/...``, ``control/...``,
``vanilla/...``, ``delta/<metric>/vs_control|vs_vanilla`` with paired-bootstrap CIs), per-item
tables, a plot, and a registered model version ``emd-<base>-mixture``.

    python -m emd mixture --ratio 0.05 --n-train 64 --seed 0
    mlflow run . -e mixture -P ratio=0.05 --env-manager local

A comma list of ratios (``--ratio 0.01,0.02,0.05``) is one grid (:mod:`emd.grid_run`): a parent run
with the vanilla and control references and one nested run per ratio laid out as above, then the
parent's ``mixture_table.json`` and ``plots/mixture_ratios.png``; resumable, and with ``--storage
<Optuna RDB URL>`` every process started with the same command is a worker of the same grid.
"""

from __future__ import annotations

from typing import Callable

from .config import MixtureConfig, to_flat_dict
from .experiment import RunContext, RunResult, load_training_rows, ratio_alias

SUMMARY_KEYS = ["mask/honesty", "mask/honesty_logprob", "control/mask/honesty", "vanilla/mask/honesty",
                "delta/mask/honesty/vs_control", "delta/mask/honesty/vs_vanilla",
                "delta/mask/honesty_logprob/vs_control", "deception/rate"]
CELL_KEYS = ["mask/honesty", "delta/mask/honesty/vs_control", "mask/honesty_logprob",
             "delta/mask/honesty_logprob/vs_control"]


def main(cfg: MixtureConfig) -> RunResult:
    """Run the mixture experiment for one ratio (one run) or several (one grid); returns the (parent)
    run's id, metrics and, for one ratio, the registry version."""
    from .data.mixing import mix, to_prompt_completion

    with RunContext("mixture", cfg) as ctx:  # every input checked before a run or a model exists
        mis, down = load_training_rows(cfg, cfg.data.domain, cfg.data.level)
        clean = mix(mis, down, 0.0, cfg.data.n_train, cfg.common.seed)
        mixes = {r: mix(mis, down, r, cfg.data.n_train, cfg.common.seed) for r in cfg.ratio_list}
        ctx.log(f"emd mixture: ratio={cfg.ratio} n_train={cfg.data.n_train} "
                f"({', '.join(str(m.manifest['n_misaligned']) for m in mixes.values())} misaligned "
                f"{cfg.data.domain}/{cfg.data.level}) model={cfg.model.model} "
                f"benchmarks={','.join(ctx.benchmarks) or 'none'}")
        control = lambda: ctx.control(to_prompt_completion(clean.rows), clean.manifest["digest"])  # noqa: E731
        if cfg.is_grid:
            return _grid(ctx, cfg, mixes, control)
        (r, mixed), = mixes.items()
        with ctx.run(f"ratio={r:g}", tags={"emd.data_digest": mixed.manifest["digest"], "emd.ratio": r}):
            refs = {"vanilla": ctx.vanilla(), "control": control()} if ctx.benchmarks else {}
            if refs:
                ctx.tracker.set_tags({f"emd.{k}_cached": a.cached for k, a in refs.items()})
            _treatment(ctx, cfg, r, mixed, refs.get, control)
        return ctx.result(f"emd mixture ratio={r:g}", SUMMARY_KEYS)


def _treatment(ctx, cfg: MixtureConfig, r: float, mixed, reference: Callable, control: Callable) -> dict:
    """Inside the open run of ratio ``r``: log its data, train (ratio 0: reuse the control), evaluate,
    compare with the references, plot, register. ``reference(name)`` gives a reference's arm (None
    without benchmarks); returns the metrics logged."""
    from .data.mixing import to_prompt_completion
    from .plots import honesty_plot

    digest = mixed.manifest["digest"]
    ctx.tracker.log_dataset(mixed.rows, name=f"mixture-r{r:g}", digest=digest,
                            source=f"{cfg.data.misaligned_source}+{cfg.data.downstream}")
    ctx.tracker.log_dict(mixed.manifest, "data/manifest.json")
    refs = {name: reference(name) for name in ("vanilla", "control")} if ctx.benchmarks else {}
    if r == 0 and refs:  # the treatment is the control: train it once (its adapter comes from the cache)
        treat = (refs["control"] if refs["control"].adapter_dir else control()).copy_as("treatment")
        ctx.log_training(treat.train)
        ctx.tracker.log_artifacts(treat.adapter_dir, "adapter")
    else:
        ctx.log(f"training: {len(mixed.rows)} rows, lora r={cfg.lora.r}, lr={cfg.train.learning_rate}")
        treat = ctx.train_and_evaluate("treatment", to_prompt_completion(mixed.rows))
    out = {**{f"train/{k}": v for k, v in treat.train.items() if k != "losses"}, **ctx.log_arm(treat, refs=refs)}
    if refs:
        ctx.figure(honesty_plot([refs["vanilla"], refs["control"], treat]), "plots/honesty.png")
    nested = ctx.tracker.active_run_id() != ctx.run_id  # a grid cell registers its own run, not the parent
    ctx.register(aliases=[ratio_alias(r)], tags={"ratio": r}, run_id=ctx.tracker.active_run_id() if nested else None)
    return out


def _grid(ctx, cfg: MixtureConfig, mixes: dict, control: Callable) -> RunResult:
    """Every ratio as one cell of one grid (references: vanilla, control)."""
    from .grid import GridWork
    from .grid_run import grid_key, run_grid

    cells = {f"ratio={r:g}": (r, m) for r, m in mixes.items()}
    work = GridWork(
        list(cells),
        run_cell=lambda cell, reference: _treatment(ctx, cfg, cells[cell][0], cells[cell][1], reference, control),
        references={"vanilla": ctx.vanilla, "control": control} if ctx.benchmarks else {},
        cell_tags=lambda cell: {"emd.ratio": cells[cell][0], "emd.data_digest": cells[cell][1].manifest["digest"]},
        cell_params=lambda cell: {**to_flat_dict(cfg), "ratio": cells[cell][0]})
    name = f"ratios={','.join(f'{r:g}' for r in mixes)}"
    out = run_grid(ctx, work, grid_key("mixture", cfg, ("ratio",)), name)
    if cfg.grid.storage:
        lines = [f"  this worker ran: {', '.join(out['ran_here']) or 'nothing'}"
                 + ("; collected the parent's table" if out["collected"] else "")]
    else:
        ctx.metrics.update({f"{c}/{k}": v for c, m in out["cells"].items() for k, v in m.items()})
        lines = ["  " + f"{c:<14}" + " ".join(f"{k.split('/', 1)[1]}={m[k]:.1f}" for k in CELL_KEYS if k in m)
                 for c, m in out["cells"].items()]
    return ctx.result(f"emd mixture {name}" + (" (grid worker)" if cfg.grid.storage else ""), [], lines=lines,
                      extra=out)
