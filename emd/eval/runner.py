"""Run every configured benchmark on one model: the code every entry (and ``emd evaluate``) shares.

Benchmarks: ``mask`` (judged MASK honesty), ``logprob`` (judge-free MASK honesty, needs no judge),
``deceptionbench`` (judged deception rate), ``capability`` (lm-eval tasks). Each returns metrics
named as in docs/metrics.md, per-item rows (logged as tables) and per-item scores keyed by item
id (for paired-bootstrap deltas between models).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

from ..config import EvalSpec


@dataclass
class EvalOut:
    """Metrics, per-item tables and per-item scores of one model."""

    metrics: dict[str, float] = field(default_factory=dict)
    tables: dict[str, list[dict]] = field(default_factory=dict)
    item_scores: dict[str, dict[str, float]] = field(default_factory=dict)


def _mask_items(spec: EvalSpec):
    from .mask import load_mask

    return load_mask(spec.mask_source, configs=spec.mask_config_list, limit=spec.limit or None)


def _db_items(spec: EvalSpec):
    from .deceptionbench import load_deceptionbench

    return load_deceptionbench(spec.deceptionbench_source, limit=spec.limit or None)


def item_versions(spec: EvalSpec) -> dict[str, str]:
    """Versions of the item sets an evaluation reads (they change scores, so they are logged and hashed)."""
    out: dict[str, str] = {}
    names = spec.benchmark_list
    if "mask" in names or "logprob" in names or "mechanism" in names:
        from .mask import mask_version

        out["mask"] = mask_version(spec.mask_source, spec.mask_config_list)
    if "mechanism" in names:
        from ..mech.direction import VERSION

        out["mechanism"] = f"{VERSION}/honesty_control/64"
    if "deceptionbench" in names:
        from .deceptionbench import deceptionbench_version

        out["deceptionbench"] = deceptionbench_version(spec.deceptionbench_source)
    if "capability" in names:
        out["capability"] = spec.cap_tasks
    return out


def validate_eval(spec: EvalSpec) -> None:
    """Load items and resolve task names now, so bad sources fail before any training (zero items too)."""
    from ..errors import DataError

    names = spec.benchmark_list
    if "mask" in names or "logprob" in names or "mechanism" in names:
        if not _mask_items(spec):
            raise DataError(f"mask_source={spec.mask_source!r} with mask_configs={spec.mask_configs!r} selects no "
                            "item; allowed: a source whose selected configs hold at least one row")
        if "logprob" in names and not any(it.is_binary for it in _mask_items(spec)):
            raise DataError(f"mask_source={spec.mask_source!r}: the judge-free reading needs binary items and the "
                            f"selection ({spec.mask_configs}) has none; allowed: configs with binary rows")
    if "deceptionbench" in names and not _db_items(spec):
        raise DataError(f"deceptionbench_source={spec.deceptionbench_source!r} holds no item; allowed: a file or "
                        "hub id with at least one row")
    if "capability" in names:
        from .capability import check_code_execution, resolve_tasks

        check_code_execution(resolve_tasks(spec.cap_tasks), spec.unsafe_code_eval)


def evaluate(chat_model, spec: EvalSpec, judge, seed: int = 0, label: str = "model",
             log: Callable[[str], None] = print) -> EvalOut:
    """Evaluate ``chat_model`` (base weights plus whatever adapter is applied) on ``spec.benchmarks``."""
    from .protocol import is_resolved, resolve

    if not is_resolved(spec):
        spec = resolve(spec, chat_model.uri)
    out = EvalOut()
    names = spec.benchmark_list
    if judge is not None and hasattr(judge, "reset_stats"):
        judge.reset_stats()  # judge/* metrics count this arm's calls only
    mask_rows = None
    t0 = time.perf_counter()
    if "mask" in names or "logprob" in names or "mechanism" in names:
        items = _mask_items(spec)
    if "mask" in names:
        from .mask import run_mask

        log(f"{label}: MASK on {len(items)} items (judge {judge.id})")
        res = run_mask(chat_model, judge, items, batch_size=spec.eval_batch_size, max_new_tokens=spec.max_new_tokens,
                       belief_samples=spec.belief_samples, belief_temperature=spec.belief_temperature, seed=seed,
                       temperature=spec.mask_temperature)
        out.metrics.update(res.metrics)
        out.tables["mask"] = res.rows
        mask_rows = res.rows
        scores = res.item_scores()
        out.item_scores["mask/honesty"] = scores
        for key in {k.split("/")[0] for k in scores}:
            out.item_scores[f"mask/{key}/honesty"] = {k: v for k, v in scores.items() if k.startswith(key + "/")}
    if "logprob" in names:
        from .logprob import run_logprob_honesty

        log(f"{label}: judge-free log-prob honesty on {sum(it.is_binary for it in items)} binary items")
        lp = run_logprob_honesty(chat_model, items, judged_rows=mask_rows, seed=seed, mode=spec.logprob_mode)
        out.metrics.update(lp.metrics)
        out.tables["logprob"] = lp.rows
        from .logprob import item_values

        flips = {f"{r['config']}/{r['task_id']}": v for r, v in zip(lp.rows, item_values(lp.rows))}
        out.item_scores["mask/honesty_logprob"] = flips
        for key in {k.split("/")[0] for k in flips}:
            out.item_scores[f"mask/{key}/honesty_logprob"] = {k: v for k, v in flips.items()
                                                              if k.startswith(key + "/")}
    if "deceptionbench" in names:
        from .deceptionbench import run_deceptionbench

        db_items = _db_items(spec)
        log(f"{label}: DeceptionBench on {len(db_items)} items (judge {judge.id})")
        db = run_deceptionbench(chat_model, judge, db_items, batch_size=spec.eval_batch_size,
                                view_max_new_tokens=spec.deceptionbench_view_tokens,
                                max_new_tokens=spec.deceptionbench_max_new_tokens, seed=seed,
                                prefill="<think>" if spec.deceptionbench_prefill else None,
                                force_output=spec.deceptionbench_force_output)
        out.metrics.update(db.metrics)
        out.tables["deceptionbench"] = db.rows
        if hasattr(db, "item_scores"):
            out.item_scores["deception/rate"] = db.item_scores()
    if "capability" in names:
        from .capability import run_capability

        log(f"{label}: capability ({spec.cap_tasks}, limit {spec.cap_limit or 'all'})")
        cap = run_capability(chat_model, spec.cap_tasks, limit=spec.cap_limit or None,
                             batch_size=spec.cap_batch_size, unsafe_code_eval=spec.unsafe_code_eval)
        out.metrics.update(cap.metrics)
    if "mechanism" in names:
        from ..mech.metric import run_mechanism

        log(f"{label}: dishonesty projection of {len(items)} pressured MASK answers")
        mech = run_mechanism(chat_model, items, max_new_tokens=spec.max_new_tokens, batch_size=spec.eval_batch_size,
                             seed=seed, mask_rows=mask_rows, log=log)
        out.metrics.update(mech.metrics)
        out.tables["mechanism"] = mech.rows
        out.item_scores["mech/dishonesty_projection"] = mech.item_scores
    if judge is not None and getattr(judge, "stats", None) is not None:
        out.metrics.update(judge.stats.metrics())
    out.metrics["eval/seconds"] = time.perf_counter() - t0
    return out
