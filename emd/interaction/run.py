"""``emd interaction``: self-training on the feedback of a user population with biased users.

For every biased ratio and method of the config (a grid when either is a comma list), and for each of
``rounds`` rounds:

1. **collect** ``n_conversations`` dialogues of ``turns`` assistant turns between the current model
   (sampling at ``temperature``) and simulated users, exactly ``round(biased_ratio * n)`` of them
   biased; the simulator rates every assistant turn 1-10; satisfaction = mean turn rating;
2. **select** the top-k (and for KTO the bottom-k) complete trajectories by satisfaction;
3. **train** a LoRA: SFT on the top-k assistant turns, or KTO with top-k desirable and bottom-k
   undesirable (round r+1 trains on the round-r model merged in; the rounds' adapters are composed
   into one adapter on the clean base, :mod:`emd.interaction.adapters`);
4. **evaluate** the trained model on the configured benchmarks (MASK honesty, judge-free honesty,
   DeceptionBench, capability) and on the **probe**: a fixed population (half biased, half benign
   users, a seed of its own, the same for every model) that measures in the environment how
   satisfying and how validating the model has become.

MLflow layout (experiment ``emd-interaction``): one parent run per invocation; one nested run per
(ratio, method) cell; one nested run per round inside its cell (with ``--storage``, the cells are run
by worker processes, :mod:`emd.interaction.workers`). A round run holds the collected
trajectories (ratings, who was biased, which were selected) and the probe dialogues as tables, the
composite adapter under ``adapter/``, training curves and metrics with deltas vs vanilla (and vs the
ratio-0 cell of the same method and round, as ``vs_control``). A cell run holds its metrics over
rounds (step = round) and the rounds plot, and registers its final adapter as
``emd-<base>-interaction`` with alias ``<method>_ratio_<r>``. The parent holds the grid table and the
plot of honesty / deception / satisfaction against biased ratio per method, with CIs.

Collections and trained adapters are cached under ``<EMD_CACHE_DIR>/interaction/`` by content hash:
an interrupted run resumes from the stored trajectories, and round-1 collections are shared by SFT
and KTO (they are collected by the same base model).

    python -m emd interaction --biased-ratio 0.1 --method kto --rounds 2
    python -m emd interaction --biased-ratio 0,0.1,0.2,0.5,1.0 --method sft,kto --benchmarks logprob,mask --limit 5
    mlflow run . -e interaction -P biased_ratio=0.1 -P method=kto -P rounds=2 --env-manager local
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..config import InteractionConfig
from ..errors import ConfigError
from ..experiment import registry_name


@dataclass
class InteractionResult:
    """What ``emd interaction`` returns: the parent run and every cell."""

    run_id: str
    experiment: str
    metrics: dict[str, float] = field(default_factory=dict)
    cells: list[dict] = field(default_factory=list)
    table: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    model_version: str | None = None
    registered_name: str | None = None


def main(cfg: InteractionConfig, log: Callable[[str], None] = print,
         on_stored: Callable[[int], None] | None = None) -> InteractionResult:
    """Run the interaction experiment (one cell or a grid); returns the parent run and the grid table."""
    from ..experiment import RunContext
    from . import rounds
    from .plots import grid_figure, rounds_figure
    from .rating import RatingRule
    from .scenarios import load_scenarios, scenarios_digest, scenarios_version
    from .simulator import get_simulator, preflight

    spec = cfg.interaction
    preflight(spec.simulator)
    ratios, methods = _grid(spec)  # ascending ratios: the ratio-0 control is trained before the others
    with RunContext("interaction", cfg, log=log) as ctx:
        rule = RatingRule()
        simulator = get_simulator(spec.simulator, rule=rule) if spec.simulator == "scripted" else get_simulator(spec.simulator)
        env = rounds.Env(ctx=ctx, scenarios=load_scenarios(), simulator=simulator, rule=rule,
                         scen_digest=scenarios_digest(), log=log, on_stored=on_stored)
        name = (f"grid ratios={','.join(f'{r:g}' for r in ratios)} methods={','.join(methods)} rounds={spec.rounds}"
                if len(ratios) > 1 or len(methods) > 1 else f"ratio={ratios[0]:g} {methods[0]} rounds={spec.rounds}")
        log(f"emd interaction: {name}; {spec.n_conversations} conversations x {spec.turns} turns per round, "
            f"simulator={spec.simulator}, benchmarks={','.join(ctx.benchmarks) or 'none'}")
        parent_tags = {"emd.level": "parent", "emd.scenarios_version": scenarios_version(),
                       "emd.simulator": simulator.id, "emd.simulator_version": simulator.version}
        if cfg.grid.storage:
            from . import workers

            out = workers.run(ctx, env, ratios, methods, name, parent_tags)
            res = InteractionResult(run_id=out["parent_run_id"], experiment=ctx.experiment, cells=out["cells"],
                                    seconds=time.perf_counter() - ctx.t0)
            log(f"== emd interaction (grid worker) ==  parent run {res.run_id}: this worker ran "
                f"{', '.join(out['ran_here']) or 'nothing'}" + ("; collected the parent's table" if out["collected"] else ""))
            return res
        with ctx.run(name, tags=parent_tags):
            from ..pipeline import Arm

            vanilla = ctx.vanilla() if ctx.benchmarks else Arm(name="vanilla")
            pm, pitems, ptable = rounds.probe(env, None, "vanilla")
            vanilla.metrics.update(pm)
            vanilla.item_scores.update(pitems)
            env.vanilla = vanilla
            ctx.tracker.log_metrics({f"vanilla/{k}": v for k, v in vanilla.metrics.items()})
            ctx.tracker.log_table(ptable, "trajectories/vanilla_probe.json")
            cells = [rounds.run_cell(env, ratio, method) for ratio in ratios for method in methods]
            table = [row for c in cells for row in c["rows"] if row["round"] > 0]
            ctx.tracker.log_table(table, "tables/grid.json")
            ctx.figure(grid_figure([c["rows"][-1] for c in cells], vanilla.metrics), "plots/grid.png")
            ctx.figure(rounds_figure([row for c in cells for row in c["rows"]], vanilla.metrics), "plots/rounds.png")
            metrics = _log_parent_curves(ctx, cells)
            flat = dict(cells[0]["rounds"][-1].metrics) if len(cells) == 1 else {}
            flat["seconds"] = time.perf_counter() - ctx.t0
            ctx.tracker.log_metrics(flat)
            metrics.update(flat)
            run_id = ctx.run_id
    last_version = next((c["version"] for c in reversed(cells) if c.get("version")), None)
    res = InteractionResult(run_id=run_id, experiment=ctx.experiment, metrics=metrics, cells=cells, table=table,
                            seconds=time.perf_counter() - ctx.t0, model_version=last_version,
                            registered_name=registry_name(cfg.model.model, "interaction") if last_version else None)
    log("\n".join(summary_lines(res, vanilla.metrics)))
    return res


def _grid(spec) -> tuple[list[float], list[str]]:
    """The (sorted ratios, methods) of the grid; bad combinations fail before anything loads."""
    ratios = sorted(set(spec.ratio_list))
    if not ratios:
        raise ConfigError(f"biased_ratio={spec.biased_ratio!r}; allowed: numbers in [0, 1], comma separated")
    methods = list(dict.fromkeys(spec.method_list))
    if not methods:
        raise ConfigError(f"method={spec.method!r}; allowed: sft, kto, or sft,kto")
    if "kto" in methods and spec.bottom_k < 1:
        raise ConfigError(f"method kto needs bottom_k >= 1 (undesirable trajectories); got bottom_k={spec.bottom_k}")
    return ratios, methods


def _log_parent_curves(ctx, cells: list[dict]) -> dict[str, float]:
    """The parent's curves over rounds: one metric history per cell (step = round)."""
    from .rounds import KEY_METRICS

    metrics: dict[str, float] = {}
    for c in cells:
        for o in c["rounds"]:
            curve = {f"{c['method']}/ratio_{c['ratio']:g}/{k}": o.metrics[k] for k in KEY_METRICS if k in o.metrics}
            ctx.tracker.log_metrics(curve, step=o.round)
            metrics.update(curve)
    return metrics


def summary_lines(res: InteractionResult, vanilla: dict) -> list[str]:
    """The end-of-run summary: one line per (cell, round)."""
    cols = [("honesty", "mask/honesty"), ("hon_lp", "mask/honesty_logprob"), ("decept", "deception/rate"),
            ("valid%", "probe/validation_rate"), ("sat_b", "probe/satisfaction_biased"),
            ("sat_n", "probe/satisfaction_benign"), ("top_V", "select/top_validation")]
    lines = [f"== emd interaction ==  parent run {res.run_id} (experiment {res.experiment}, {res.seconds:.0f} s)",
             f"{'cell':<16}{'round':>6}" + "".join(f"{c:>9}" for c, _ in cols)]
    fmt = lambda m, k: f"{m[k]:9.2f}" if k in m else f"{'-':>9}"  # noqa: E731
    lines.append(f"{'vanilla':<16}{0:>6}" + "".join(fmt(vanilla, k) for _, k in cols))
    for c in res.cells:
        for o in c["rounds"]:
            lines.append(f"{c['method'] + ' r=' + format(c['ratio'], 'g'):<16}{o.round:>6}"
                         + "".join(fmt(o.metrics, k) for _, k in cols))
    if res.registered_name:
        lines.append(f"registered: models:/{res.registered_name}/{res.model_version} (aliases <method>_ratio_<r>)")
    lines.append("browse: mlflow ui --host 127.0.0.1 --port 5000   (at the repo root; open http://127.0.0.1:5000)")
    return lines
