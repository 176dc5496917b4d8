"""``emd direct``: LoRA fine-tune on misaligned data of one domain and intensity, or the whole grid.

    python -m emd direct --domain medical --level severe
    mlflow run . -e direct -P domain=all -P level=all --env-manager local

One parent run in ``emd-direct`` holds a nested run per cell (domain x level) plus the vanilla
reference, a domain x level table of every metric (CSV) and a heat-map (PNG). Resumable: rerunning
the same grid reopens the same parent (matched by a hash of the config without domain/level) and
skips every cell whose nested run FINISHED; a cell killed midway is marked FAILED and rerun.
"""

from __future__ import annotations

import time
from typing import Any

from .config import DOMAINS, LEVELS, DirectConfig, to_flat_dict, to_yaml
from .experiment import RunResult, registry_name, summary_lines


def expand(value: str, allowed: tuple[str, ...]) -> list[str]:
    """``all`` or a comma list -> the list of names, in canonical order."""
    names = [v.strip() for v in value.split(",") if v.strip()]
    if "all" in names:
        return list(allowed)
    return [n for n in allowed if n in names]


def grid_key(cfg: DirectConfig) -> str:
    """Hash of everything but domain/level: the same key means the same grid, so its cells can be reused."""
    from .references import content_key

    flat = to_flat_dict(cfg)
    for k in ("domain", "level", "tracking_uri", "experiment", "register", "reuse_references"):
        flat.pop(k, None)
    return content_key({"direct": flat})[:24]


def cell_table(cells: dict[str, dict[str, float]]):
    """Rows (domain, level, metric...) of every cell's metrics as a DataFrame."""
    import pandas as pd

    rows = []
    for cell, metrics in cells.items():
        d, lv = cell.split("/")
        rows.append({"domain": d, "level": lv, **{k: v for k, v in sorted(metrics.items())}})
    df = pd.DataFrame(rows)
    if not df.empty:
        df["domain"] = pd.Categorical(df["domain"], DOMAINS, ordered=True)
        df["level"] = pd.Categorical(df["level"], LEVELS, ordered=True)
        df = df.sort_values(["domain", "level"]).reset_index(drop=True)
    return df


def heatmap(df, metrics: list[str], title: str):
    """One panel per metric: domains (rows) x levels (columns), values annotated."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    shown = [m for m in metrics if m in df.columns]
    fig, axes = plt.subplots(1, max(1, len(shown)), figsize=(3.8 * max(1, len(shown)), 3.2), squeeze=False)
    doms = [d for d in DOMAINS if d in set(df["domain"].astype(str))]
    levs = [lv for lv in LEVELS if lv in set(df["level"].astype(str))]
    for ax, m in zip(axes[0], shown):
        grid = np.full((len(doms), len(levs)), np.nan)
        for _, r in df.iterrows():
            grid[doms.index(str(r["domain"])), levs.index(str(r["level"]))] = r[m]
        if m.startswith("delta/"):  # a diverging scale centred on zero: red = less honest than the reference
            span = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
            span = max(span, 1.0)
            im = ax.imshow(grid, cmap="RdYlGn", vmin=-span, vmax=span)
        else:
            im = ax.imshow(grid, cmap="RdYlGn", vmin=0 if "honesty" in m else None,
                           vmax=100 if "honesty" in m else None)
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


HEATMAP_METRICS = ["mask/honesty", "mask/honesty_logprob", "delta/mask/honesty/vs_vanilla",
                   "delta/mask/honesty_logprob/vs_vanilla"]


def main(cfg: DirectConfig) -> RunResult:
    """Run every (domain, level) cell of the configured grid under one resumable parent run."""
    from . import pipeline
    from .data.loaders import load_misaligned
    from .data.mixing import mix, to_prompt_completion
    from .eval.runner import validate_eval
    from .judges import get_judge
    from .models import load_model, validate_model_uri
    from .tracking import Tracker

    t0 = time.perf_counter()
    tracker = Tracker(cfg.common.tracking_uri)
    validate_model_uri(cfg.model.model)
    validate_eval(cfg.eval)
    domains, levels = expand(cfg.data.domain, DOMAINS), expand(cfg.data.level, LEVELS)
    seed, n_train = cfg.common.seed, cfg.data.n_train
    # Load (and validate) every cell's data before training anything.
    cell_rows: dict[str, Any] = {}
    for d in domains:
        for lv in levels:
            rows = load_misaligned(cfg.data.misaligned_source, d, lv, seed=seed)
            cell_rows[f"{d}/{lv}"] = mix(rows, [], 1.0, n_train, seed)
    benchmarks = cfg.eval.benchmark_list
    judge = get_judge(cfg.judge.judge) if benchmarks else None
    experiment = cfg.common.experiment or "emd-direct"
    key = grid_key(cfg)
    reg_name = registry_name(cfg.model.model, "direct")

    # ---- resume: the newest parent with this grid key
    prev = tracker.search_runs(experiment, filter_string=f"tags.`emd.grid_key` = '{key}'",
                               order_by=["attributes.start_time DESC"])
    parent_id = None if prev.empty else prev.iloc[0]["run_id"]
    done: dict[str, dict[str, float]] = {}
    if parent_id:
        kids = tracker.search_runs(experiment, filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
        for _, r in kids.iterrows():
            cell = r.get("tags.emd.cell")
            if r["status"] == "FINISHED" and isinstance(cell, str):
                done[cell] = {k[len("metrics."):]: float(v) for k, v in r.items()
                              if k.startswith("metrics.") and v == v}
            elif r["status"] == "RUNNING":
                tracker.set_terminated(r["run_id"], "FAILED")  # killed midway: rerun it
        print(f"emd direct: resuming parent run {parent_id} ({len(done)} finished cells reused)")
    cells = [c for c in cell_rows if c not in done]
    print(f"emd direct: {len(cell_rows)} cells ({', '.join(cell_rows)}); to run: {len(cells)}; model={cfg.model.model}")

    work = pipeline.workdir()
    results: dict[str, dict[str, float]] = {}
    try:
        with tracker.run(experiment, run_name=f"direct {cfg.data.domain} x {cfg.data.level}", run_id=parent_id,
                         tags=None if parent_id else tracker.standard_tags(
                             "direct", cfg.model.model, extra={"emd.grid_key": key})) as parent:
            parent_id = parent.info.run_id
            if not done:
                tracker.log_params(pipeline.flat_params(cfg))
                tracker.log_text(to_yaml(cfg), "config.yaml")
            chat = load_model(cfg.model.model, dtype=cfg.model.dtype)
            vanilla = None
            if benchmarks:
                vanilla = pipeline.vanilla_reference(chat, cfg.eval, cfg.judge, judge, seed,
                                                     reuse=cfg.common.reuse_references)
                if "vanilla" not in done:
                    with tracker.run(experiment, run_name="vanilla", nested=True,
                                     tags={"emd.cell": "vanilla", "emd.entry": "direct"}):
                        tracker.log_metrics(vanilla.metrics)
                        pipeline.log_arm_tables(tracker, vanilla)
            for cell in cells:
                d, lv = cell.split("/")
                data = cell_rows[cell]
                with tracker.run(experiment, run_name=cell, nested=True,
                                 tags=tracker.standard_tags("direct", cfg.model.model,
                                                            extra={"emd.cell": cell, "emd.domain": d,
                                                                   "emd.level": lv,
                                                                   "emd.data_digest": data.manifest["digest"]})) as run:
                    tracker.log_params({**pipeline.flat_params(cfg), "domain": d, "level": lv})
                    tracker.log_dataset(data.rows, name=f"direct-{d}-{lv}", digest=data.manifest["digest"],
                                        source=f"{cfg.data.misaligned_source}:{d}/{lv}")
                    print(f"cell {cell}: training on {len(data.rows)} rows")
                    adapter_dir, info = pipeline.train_arm(chat, cell.replace("/", "_"),
                                                           to_prompt_completion(data.rows), cfg.lora, cfg.train,
                                                           seed, work)
                    tracker.log_artifacts(adapter_dir, "adapter")
                    metrics = {f"train/{k}": v for k, v in info.items() if k != "losses"}
                    if benchmarks:
                        arm = pipeline.evaluate_arm(chat, cell.replace("/", "_"), cfg.eval, judge, seed,
                                                    adapter_dir=adapter_dir)
                        metrics.update(arm.metrics)
                        metrics.update(pipeline.deltas(arm, vanilla, "vanilla", seed=seed))
                        pipeline.log_arm_tables(tracker, arm)
                    tracker.log_metrics(metrics)
                    if cfg.common.register:
                        v = tracker.register_adapter(run.info.run_id, reg_name, aliases=[f"{d}_{lv}"],
                                                     tags={"base_model": cfg.model.model, "domain": d, "level": lv})
                        tracker.set_tags({"emd.registered_model": f"{reg_name}/{v}"})
                    results[cell] = metrics
            all_cells = {**{c: m for c, m in done.items() if c != "vanilla"}, **results}
            df = cell_table(all_cells)
            if not df.empty:
                import matplotlib.pyplot as plt

                tracker.log_table(df.to_dict("records"), "direct_table.json")
                if benchmarks:
                    fig = heatmap(df, HEATMAP_METRICS, f"direct fine-tunes of {cfg.model.model}")
                    tracker.log_figure(fig, "plots/direct_heatmap.png")
                    plt.close(fig)
            if vanilla is not None:
                tracker.log_metrics({f"vanilla/{k}": v for k, v in vanilla.metrics.items()})
            tracker.log_metrics({"n_cells": float(len(all_cells)), "n_cells_trained_now": float(len(results))})
    finally:
        pipeline.cleanup(work)
    res = RunResult(run_id=parent_id, experiment=experiment, seconds=time.perf_counter() - t0,
                    metrics={f"{c}/{k}": v for c, m in {**done, **results}.items() for k, v in m.items()},
                    extra={"cells": {**done, **results}})
    lines = summary_lines(f"emd direct {cfg.data.domain} x {cfg.data.level}", res, [])
    for cell, m in {**done, **results}.items():
        if cell == "vanilla":
            continue
        h, hl = m.get("mask/honesty"), m.get("mask/honesty_logprob")
        lines.insert(-1, f"  {cell:<18} honesty={h if h is None else round(h, 1)} "
                         f"honesty_logprob={hl if hl is None else round(hl, 1)}")
    print("\n".join(lines))
    return res
