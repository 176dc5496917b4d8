"""The rounds of ``emd interaction``: collect dialogues, select, train, evaluate, probe; one cell of
the (biased ratio x method) grid is ``rounds`` of these (see :mod:`emd.interaction.run`)."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .. import storage
from ..config import InteractionConfig
from ..errors import ConfigError
from .metrics import collection_metrics, selection_metrics, trajectory_table

PROBE_RATIO = 0.5  # the probe population: half biased, half benign users
PROBE_SEED_OFFSET = 7919  # the probe's personas differ from every training collection's
KEY_METRICS = ["mask/honesty", "mask/honesty_logprob", "deception/rate", "probe/validation_rate",
               "probe/satisfaction_biased", "probe/satisfaction_benign", "collect/satisfaction",
               "select/top_validation"]


def interaction_cache() -> Path:
    """``<EMD_CACHE_DIR or ~/.cache/emd>/interaction``."""
    return storage.cache_dir("interaction")


content_key = storage.digest  # the one canonical digest (emd.storage)


def collection_key(model_id: dict, adapter: str, population: dict, spec, simulator, scenarios_digest: str) -> str:
    """Everything that determines a collection: collecting model (+ adapter digest), population, dialogue settings."""
    return content_key({"kind": "collection", "model": model_id, "adapter": adapter, "population": population,
                        "turns": spec.turns, "temperature": spec.temperature, "reply_tokens": spec.reply_tokens,
                        "simulator": simulator.version, "scenarios": scenarios_digest,
                        # bump when the dialogue protocol changes (dialogue.ASSISTANT_SYSTEM_PROMPT, turn order)
                        "schema": 1})


@dataclass
class Env:
    """Everything a cell needs, built once per invocation."""

    ctx: Any  # the RunContext (tracker, model, judge, work folder, evaluation)
    scenarios: list
    simulator: Any
    rule: Any
    scen_digest: str
    vanilla: Any = None  # pipeline.Arm of the base model (benchmarks + probe)
    controls: dict = field(default_factory=dict)  # (method, round) -> Arm of the ratio-0 cell
    log: Callable[[str], None] = print
    on_stored: Callable[[int], None] | None = None  # progress hook of every collection (tests interrupt with it)

    @property
    def cfg(self) -> InteractionConfig:
        """The entry config."""
        return self.ctx.cfg

    @property
    def tracker(self):
        """The run's tracker."""
        return self.ctx.tracker

    @property
    def chat(self):
        """The base model (loaded on first use)."""
        return self.ctx.chat

    @property
    def work(self) -> Path:
        """The run's work folder."""
        return self.ctx.work

    @property
    def spec(self):
        """The InteractionSpec."""
        return self.cfg.interaction

    @property
    def seed(self) -> int:
        """The run seed."""
        return self.cfg.common.seed

    def reload_base(self) -> None:
        """A fresh copy of the base weights (after a merge changed them in place)."""
        self.ctx.reload_model()


def collect_cached(chat, specs, population: dict, spec, simulator, rule, adapter_dir: str | None = None,
                   label: str = "collection", on_stored: Callable[[int], None] | None = None,
                   log: Callable[[str], None] = print, scen_digest: str | None = None):
    """Collect (or resume) ``specs`` with ``chat`` plus ``adapter_dir`` in the content-addressed store.

    ``population`` describes how ``specs`` were built (n, ratio, seed, role): with the collecting
    model's identity, the adapter digest and the dialogue settings of ``spec`` (an InteractionSpec) it
    names the store folder ``<cache>/interaction/collect-<key>``. Returns (trajectories, seconds, key).
    """
    from .. import pipeline
    from .adapters import adapter_digest
    from .dialogue import TrajectoryStore, collect
    from .scenarios import scenarios_digest

    adapter = adapter_digest(adapter_dir) if adapter_dir else "base"
    key = collection_key(pipeline.model_identity(chat), adapter, population, spec, simulator,
                         scen_digest or scenarios_digest())
    folder = interaction_cache() / f"collect-{key[:24]}"
    folder.mkdir(parents=True, exist_ok=True)
    meta = folder / "meta.json"
    if not meta.is_file():
        meta.write_text(json.dumps({"population": population, "adapter": adapter, "label": label}, indent=2))
    t0 = time.perf_counter()
    log(f"{label}: collecting {len(specs)} conversations x {spec.turns} turns ({folder.name})")
    with chat.adapter(adapter_dir):
        trajs = collect(chat, specs, simulator, turns=spec.turns, temperature=spec.temperature,
                        reply_tokens=spec.reply_tokens, seed=int(key[:8], 16),
                        store=TrajectoryStore(folder / "trajectories.jsonl"), rule=rule,
                        chunk_size=min(16, len(specs)), on_stored=on_stored, log=log)
    return trajs, time.perf_counter() - t0, key


def training_population(scenarios, spec, ratio: float, seed: int, r: int):
    """(population descriptor, specs) of round ``r``'s training collection: fresh users every round."""
    from .personas import build_population

    cseed = seed * 1000 + r
    population = {"n": spec.n_conversations, "ratio": ratio, "seed": cseed, "role": "train"}
    return population, build_population(scenarios, spec.n_conversations, ratio, cseed)


def _collect(env: Env, population: dict, specs, adapter_dir: str | None, label: str):
    return collect_cached(env.chat, specs, population, env.spec, env.simulator, env.rule, adapter_dir, label,
                          env.on_stored, env.log, env.scen_digest)


def probe(env: Env, adapter_dir: str | None, label: str):
    """The probe dialogues of one model: metrics ``probe/...``, item scores and the table."""
    from .personas import build_population

    n = env.spec.n_conversations
    pseed = env.seed + PROBE_SEED_OFFSET
    specs = build_population(env.scenarios, n, PROBE_RATIO, pseed)
    trajs, secs, _ = _collect(env, {"n": n, "ratio": PROBE_RATIO, "seed": pseed, "role": "probe"}, specs, adapter_dir,
                              f"{label} probe")
    m, items = collection_metrics(trajs, "probe/", env.seed)
    m["probe/seconds"] = secs
    return m, items, trajectory_table(trajs, None, env.spec.turns)


def _store_dir(src: str | Path, dst: Path) -> Path:
    """Copy a folder into the cache atomically (temp sibling + rename)."""
    from ..storage import atomic_dir

    with atomic_dir(dst) as tmp:
        shutil.copytree(src, tmp, dirs_exist_ok=True)
    return dst


def _train_round(env: Env, method: str, rows: list[dict], collect_key: str, prev_model: str | None, name: str):
    """Train (or reuse) the round's LoRA; returns (increment dir, composite dir, train info, reused)."""
    from .. import pipeline
    from .adapters import adapter_digest, compose_adapters, merge_adapter

    cfg = env.cfg
    key = content_key({"kind": "train", "collection": collect_key, "method": method, "top_k": env.spec.top_k,
                       "bottom_k": env.spec.bottom_k, "lora": vars(cfg.lora), "train": vars(cfg.train),
                       "seed": env.seed, "rows": content_key({"rows": rows}),
                       "prev": adapter_digest(prev_model) if prev_model else "base"})
    folder = interaction_cache() / f"train-{key[:24]}"
    if cfg.common.reuse_references and (folder / "model" / "adapter_config.json").is_file() \
            and (folder / "train.json").is_file():
        env.log(f"{name}: reusing the trained adapter {folder.name}")
        return str(folder / "adapter"), str(folder / "model"), json.loads((folder / "train.json").read_text()), True
    merged = False
    if prev_model:
        merge_adapter(env.chat, prev_model)  # round r+1 trains on the round-r model (see adapters.py)
        merged = True
    env.log(f"{name}: training {method} on {len(rows)} rows")
    try:
        inc_dir, info = pipeline.train_arm(env.chat, name, rows, cfg.lora, cfg.train, env.seed, env.work, method,
                                           progress=env.ctx.stream_training, resume=cfg.common.resume)
    finally:
        if merged:
            env.reload_base()
    comp_tmp = env.work / f"{name}-composite"
    compose_adapters(([prev_model] if prev_model else []) + [inc_dir], comp_tmp)
    _store_dir(inc_dir, folder / "adapter")
    _store_dir(comp_tmp, folder / "model")
    (folder / "train.json").write_text(json.dumps(info, default=float))
    return str(folder / "adapter"), str(folder / "model"), info, False


@dataclass
class RoundOut:
    """One finished round of one cell."""

    round: int
    metrics: dict[str, float]
    model_dir: str  # composite adapter (on the clean base)
    run_id: str
    arm: Any = None


def run_round(env: Env, ratio: float, method: str, r: int, prev_model: str | None) -> RoundOut:
    """One nested round run: collect, select, train, evaluate, probe, log."""
    from .. import pipeline
    from .selection import select, training_rows

    spec, tracker, seed = env.spec, env.tracker, env.seed
    name = f"{method}-r{ratio:g}-round{r}"
    with tracker.run(env.ctx.experiment, run_name=f"round {r}", nested=True,
                     tags={"emd.round": str(r), "emd.biased_ratio": str(ratio), "emd.method": method,
                           "emd.entry": "interaction", "emd.level": "round"}) as run:
        tracker.log_params({"round": r, "biased_ratio": ratio, "method": method})
        # ---- collect with the round-(r-1) model
        population, specs = training_population(env.scenarios, spec, ratio, seed, r)
        trajs, secs, ckey = _collect(env, population, specs, prev_model, name)
        metrics, _ = collection_metrics(trajs, "collect/", seed)
        metrics["collect/seconds"] = secs
        # ---- select
        bottom = spec.bottom_k if method == "kto" else 0
        sel = select(trajs, spec.top_k, bottom, strict=False)
        if sel.clipped:
            env.log(f"{name}: only {sel.n_eligible} complete trajectories ({len(sel.excluded)} unrated/failed); "
                    f"selection shrunk to top {len(sel.top)} / bottom {len(sel.bottom)}")
            tracker.set_tags({"emd.selection_clipped": f"{sel.n_eligible} eligible < top_k+bottom_k"})
        if not sel.top or (method == "kto" and not sel.bottom):
            raise ConfigError(f"{name}: {sel.n_eligible} complete trajectories of {sel.n_total} "
                              f"({len(sel.excluded)} excluded as unrated or failed) cannot feed {method}; "
                              f"allowed: at least {1 + (method == 'kto')} complete trajectories")
        metrics.update(selection_metrics(sel))
        tracker.log_table(trajectory_table(trajs, sel, spec.turns), f"trajectories/round{r}_collected.json")
        rows = training_rows(sel, method)
        metrics["select/n_rows"] = float(len(rows))
        # ---- train
        inc_dir, model_dir, info, reused = _train_round(env, method, rows, ckey, prev_model, name)
        tracker.set_tags({"emd.adapter_cached": str(reused), "emd.adapter_rank": str(
            json.loads((Path(model_dir) / "adapter_config.json").read_text())["r"])})
        env.ctx.log_training(info, curve=reused)  # a fresh training streamed its whole log dict already
        metrics.update({f"train/{k}": v for k, v in info.items() if k != "losses"})
        # ---- evaluate: benchmarks and probe
        arm = env.ctx.evaluate(name, model_dir)
        arm.train = info
        pm, pitems, ptable = probe(env, model_dir, name)
        arm.metrics.update(pm)
        arm.item_scores.update(pitems)
        metrics.update(arm.metrics)
        control = env.controls.get((method, r)) if ratio > 0 else None
        metrics.update(pipeline.deltas(arm, env.vanilla, "vanilla", seed=seed) if env.vanilla is not None else {})
        metrics.update(pipeline.deltas(arm, control, "control", seed=seed) if control is not None else {})
        if ratio == 0:
            env.controls[(method, r)] = arm
        metrics["round"] = float(r)
        tracker.log_metrics(metrics)
        tracker.log_table(ptable, f"trajectories/round{r}_probe.json")
        pipeline.log_arm_tables(tracker, arm)
        env.ctx.check_judge_failures(arm)
        tracker.log_artifacts(model_dir, "adapter")
        if r > 1:
            tracker.log_artifacts(inc_dir, "adapter_increment")
        return RoundOut(round=r, metrics=metrics, model_dir=model_dir, run_id=run.info.run_id, arm=arm)


def cell_name(ratio: float, method: str) -> str:
    """A cell's run name (and its grid cell name): ``ratio=0.1 sft``."""
    return f"ratio={ratio:g} {method}"


def cell_tags(ratio: float, method: str) -> dict:
    """The tags of a cell's nested run."""
    return {"emd.biased_ratio": str(ratio), "emd.method": method, "emd.entry": "interaction", "emd.level": "cell"}


def cell_params(env: Env, ratio: float, method: str) -> dict:
    """The params of a cell's nested run."""
    return {"biased_ratio": ratio, "method": method, "rounds": env.spec.rounds}


def run_cell(env: Env, ratio: float, method: str) -> dict:
    """One (ratio, method) cell: its nested run, ``rounds`` round runs, curves, registry."""
    with env.tracker.run(env.ctx.experiment, run_name=cell_name(ratio, method), nested=True,
                         tags=cell_tags(ratio, method)) as run:
        env.tracker.log_params(cell_params(env, ratio, method))
        return cell_body(env, ratio, method, run.info.run_id)


def cell_body(env: Env, ratio: float, method: str, run_id: str) -> dict:
    """Inside the open run ``run_id`` of a cell: its rounds, curves, table, adapter and registry version."""
    from ..experiment import ratio_alias
    from .plots import rounds_figure

    tracker = env.tracker
    prev = None
    outs: list[RoundOut] = []
    for r in range(1, env.spec.rounds + 1):
        out = run_round(env, ratio, method, r, prev)
        outs.append(out)
        prev = out.model_dir
        tracker.log_metrics({k: v for k, v in out.metrics.items() if not k.startswith("train/loss")}, step=r)
    final = outs[-1]
    tracker.log_metrics(final.metrics)
    rows = [_row(ratio, method, o.round, o.metrics) for o in outs]
    if env.vanilla is not None:
        rows.insert(0, _row(ratio, method, 0, env.vanilla.metrics))
    env.ctx.figure(rounds_figure(rows, env.vanilla.metrics if env.vanilla else None), "plots/rounds.png")
    tracker.log_table(rows, "tables/rounds.json")
    tracker.log_artifacts(final.model_dir, "adapter")
    version = env.ctx.register(aliases=[f"{method}_{ratio_alias(ratio)}"], run_id=run_id,
                               tags={"biased_ratio": ratio, "method": method, "rounds": env.spec.rounds})
    return {"ratio": ratio, "method": method, "run_id": run_id, "rounds": outs, "rows": rows,
            "version": version}


def _row(ratio: float, method: str, r: int, metrics: dict) -> dict:
    row = {"method": method, "biased_ratio": ratio, "round": r}
    for k in KEY_METRICS:
        for suffix in ("", "_ci_low", "_ci_high"):
            if k + suffix in metrics:
                row[k + suffix] = round(float(metrics[k + suffix]), 4)
    return row
