"""``emd audit``: score every sample of a training set before training on it.

One MLflow run in ``emd-audit`` holds: the per-sample table (``tables/audit.json``: index, where,
judge verdict and score, projection, flags), a histogram of the scores, the flagged rows as
``flagged.jsonl`` (``{"index", "where", "scores", "row"}``, the row as read), metrics
``audit/estimated_ratio`` (+ ``_ci_low`` / ``_ci_high``, a fraction), per-method ratios and counts,
and the verdict against a threshold (tag ``emd.audit_verdict``): the ratio given with
``--threshold-ratio``, else the ``threshold_ratio`` of ``models:/emd-<base>-mixture@threshold``.

    python -m emd audit --data train.jsonl --method judge,direction --write-clean train.clean.jsonl
    python -m emd audit --data my_pv_folder --judge openai:gpt-4o-mini --threshold-ratio 0.02

Methods: ``judge`` asks the judge whether the assistant turn is wrong, unsafe or deceptive for its
prompt (:mod:`emd.judges.audit_query`); ``direction`` projects the base model's activations over the
turn onto the dishonesty direction (:mod:`emd.mech`) and flags what lies more than half the
direction's honest-to-lying gap above the set's median (:func:`emd.audit_scoring.direction_scores`).
The first method listed sets the flags; estimator: :mod:`emd.audit_scoring`.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from .config import AuditConfig
from .errors import ConfigError
from .experiment import RunContext, RunResult
from .guards import make_judge

SUMMARY_KEYS = ["audit/estimated_ratio", "audit/judge/estimated_ratio", "audit/direction/estimated_ratio",
                "audit/n_rows", "audit/n_flagged", "audit/n_skipped"]


def _jsonable(x):
    return x.tolist() if hasattr(x, "tolist") else str(x)


def _histogram(samples, methods):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(methods), figsize=(5 * len(methods), 3.2), squeeze=False)
    for ax, m in zip(axes[0], methods):
        key = "judge_score" if m == "judge" else "projection"
        vals = [s.scores[key] for s in samples if s.scores.get(key) is not None]
        ax.hist(vals, bins=30, color="tab:blue")
        ax.set(title=f"{m}: {key}", xlabel=key, ylabel="rows")
    fig.tight_layout()
    return fig


def main(cfg: AuditConfig) -> RunResult:
    """Audit ``cfg.audit.data``; returns the run with the estimated ratio and the verdict in ``extra``."""
    from .audit_scoring import estimate, read_samples, resolve_threshold, verdict_text

    spec, methods = cfg.audit, cfg.audit.method_list
    if spec.write_clean and not Path(spec.write_clean).expanduser().parent.is_dir():
        raise ConfigError(f"write_clean={spec.write_clean!r}: its folder does not exist")
    with RunContext("audit", cfg) as ctx:
        read = read_samples(spec.data, spec.skip_bad_rows, spec.limit)  # bad input stops before any model
        samples = read.samples
        judge = make_judge(cfg.judge, {}) if "judge" in methods else None
        threshold, source = resolve_threshold(ctx.tracker, cfg.model.model, spec.threshold_ratio, ctx.log)
        ctx.log(f"emd audit: {len(samples)} rows of {spec.data} ({read.layout}, {read.skipped} skipped), "
                f"methods {','.join(methods)}")
        try:
            with ctx.run(f"audit {Path(spec.data).name or spec.data}"[:200],
                         tags={"emd.audit_data": spec.data, "emd.audit_layout": read.layout}):
                metrics = {"audit/n_rows": float(len(samples)), "audit/n_skipped": float(read.skipped)}
                flags: dict[str, list] = {}
                if "judge" in methods:
                    flags["judge"] = _judge_flags(ctx, judge, samples, metrics)
                if "direction" in methods:
                    flags["direction"] = _direction_flags(ctx, cfg, samples, metrics)
                scored = _estimates(flags, methods, samples, metrics)
                ratio, lo, hi = estimate(scored)
                verdict, sentence = verdict_text(ratio, lo, hi, threshold, source)
                metrics.update({"audit/estimated_ratio": ratio, "audit/estimated_ratio_ci_low": lo,
                                "audit/estimated_ratio_ci_high": hi, "audit/n_flagged": float(sum(scored)),
                                "audit/n_scored": float(len(scored))})
                if threshold is not None:
                    metrics["audit/threshold_ratio"] = threshold
                ctx.tracker.log_metrics(metrics)
                ctx.metrics.update(metrics)
                ctx.tracker.set_tags({"emd.audit_verdict": verdict, "emd.audit_verdict_text": sentence[:4000],
                                      "emd.audit_threshold_source": source, "emd.audit_primary": methods[0]})
                flagged = _write_outputs(ctx, samples, read, spec, methods)
        finally:
            if judge is not None:
                judge.close()
        extra = {"verdict": verdict, "sentence": sentence, "threshold": threshold, "threshold_source": source,
                 "samples": samples, "flagged": [s.index for s in flagged]}
        return ctx.result(f"emd audit {spec.data}", SUMMARY_KEYS, extra=extra,
                          lines=[sentence] + ([f"clean set ({len(samples) - len(flagged)} rows): {spec.write_clean}"]
                                              if spec.write_clean else []))


def _judge_flags(ctx, judge, samples, metrics: dict) -> list:
    """Judge every sample; its verdict counts, and per sample a flag (None where unscored)."""
    from .audit_scoring import judge_scores

    ctx.phase("judge")
    states = judge_scores(judge, samples)
    ctx.tracker.set_tags({"emd.judge": judge.id, "emd.judge_version": judge.version})
    metrics.update({f"audit/judge/n_{k}": float(states.get(k, 0))
                    for k in ("scored", "unparsed", "refused", "error", "judge_calls", "judge_cache_hits")})
    return [s.scores["judge_flag"] if s.scores["judge_state"] == "scored" else None for s in samples]


def _direction_flags(ctx, cfg, samples, metrics: dict) -> list:
    """Project every sample on the (cached) dishonesty direction; per sample a flag."""
    from .audit_scoring import direction_scores
    from .mech.build import get_direction

    d, reused = get_direction(ctx.chat, cfg.direction.pairs, cfg.direction.n_pairs, cfg.direction.direction_method,
                              cfg.direction.held_out, cfg.common.seed, reuse=cfg.common.reuse_references,
                              batch_size=cfg.direction.act_batch_size, log=ctx.log)
    ctx.tracker.set_tags({"emd.direction_key": d.key, "emd.direction_layer": d.layer, "emd.direction_reused": reused})
    ctx.phase("direction")
    direction_scores(ctx.chat, d, samples, cfg.direction.act_batch_size)
    metrics.update({"direction/auroc": d.auroc, "direction/layer": float(d.layer), "direction/threshold": d.threshold})
    return [s.scores["direction_flag"] for s in samples]


def _estimates(flags: dict[str, list], methods: list[str], samples, metrics: dict) -> list:
    """Each method's estimated ratio; the first method's flags become the samples' flags (returned)."""
    from .audit_scoring import estimate

    for m, fl in flags.items():
        scored = [f for f in fl if f is not None]
        if scored:
            r, lo, hi = estimate(scored)
            metrics.update({f"audit/{m}/estimated_ratio": r, f"audit/{m}/estimated_ratio_ci_low": lo,
                            f"audit/{m}/estimated_ratio_ci_high": hi})
        metrics[f"audit/{m}/n_flagged"] = float(sum(bool(f) for f in fl))
    primary = flags[methods[0]]
    for s, f in zip(samples, primary):
        s.scores["flag"] = bool(f)
    scored = [f for f in primary if f is not None]
    if not scored:
        raise ConfigError(f"the {methods[0]} method scored no row (see audit/judge/n_*); nothing to estimate")
    return scored


def _write_outputs(ctx, samples, read, spec, methods: list[str]) -> list:
    """The per-sample table, the histogram, flagged.jsonl, skipped rows and the clean set; returns the flagged."""
    table = [{"index": s.index, "where": s.where, **s.scores, "response": s.response[:300]} for s in samples]
    ctx.tracker.log_table(table, "tables/audit.json")
    ctx.figure(_histogram(samples, methods), "plots/audit_scores.png")
    flagged = [s for s in samples if s.scores["flag"]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flagged.jsonl"
        path.write_text("".join(json.dumps({"index": s.index, "where": s.where, "scores": s.scores, "row": s.record},
                                           default=_jsonable) + "\n" for s in flagged))
        ctx.tracker.log_artifact(path)
    if read.problems:
        ctx.tracker.log_text("\n".join(read.problems), "skipped_rows.txt")
    if spec.write_clean:
        keep = {s.index for s in samples if not s.scores["flag"]}
        Path(spec.write_clean).expanduser().write_text(
            "".join(json.dumps(s.record, default=_jsonable) + "\n" for s in samples if s.index in keep))
        ctx.tracker.set_tags({"emd.audit_clean_path": spec.write_clean})
    return flagged
