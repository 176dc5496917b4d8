"""The end of a study: the parent run's metrics, tags, tables and curve, and the registered threshold model."""

from __future__ import annotations

import warnings

from .outcome import Outcome, mean_maps
from .plots import curve_figure
from .study import A_ADAPTER, A_FAIL, A_RUN, point_of
from .strategy import Verdict, ratio_key


def trials_rows(runner) -> list[dict]:
    """One row per trial of the study (any state)."""
    rows = []
    for t in runner.trials():
        pt = point_of(t)
        dur = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
            else None
        rows.append({"trial": t.number, "state": t.state.name, "ratio": pt[0] if pt else None,
                     "seed": pt[1] if pt else None, "value": t.value, "seconds": dur,
                     "mlflow_run_id": t.user_attrs.get(A_RUN), "note": t.user_attrs.get(A_FAIL) or ""})
    return rows

def finalize(runner, parent_id: str, verdict: Verdict, outcomes: dict[float, Outcome],
             refs: dict[int, dict[str, float]]) -> str | None:
    """Log the conclusion in the parent run (metrics, tags, tables, curve) and register the threshold model."""
    from ..eval.stats import bootstrap_ci

    sw = runner.cfg.sweep
    n_ok, n_fail, n_pruned = runner.counts()
    ref_scores = mean_maps([refs[s] for s in runner.seeds])
    ref_value = sum(ref_scores.values()) / len(ref_scores)
    ref_lo, ref_hi = bootstrap_ci(list(ref_scores.values()), seed=runner.cfg.common.seed)
    metrics = {"n_finetunes": n_ok, "n_trials_failed": n_fail, "n_trials_pruned": n_pruned,
               "n_ratios_evaluated": len(outcomes), f"reference/{sw.metric}": ref_value,
               f"reference/{sw.metric}_ci_low": ref_lo, f"reference/{sw.metric}_ci_high": ref_hi}
    if verdict.threshold is not None:
        metrics["threshold_ratio"] = verdict.threshold
    runner.tracker.log_metrics(metrics)
    runner.tracker.set_tags({"emd.threshold": f"{verdict.threshold:g}" if verdict.threshold is not None
                           else verdict.status, "emd.sweep.status": verdict.status,
                           "emd.sweep.monotone": verdict.monotone, "emd.sweep.certain": verdict.certain,
                           "emd.sweep.message": verdict.message, "emd.strategy": sw.strategy})
    runner.tracker.log_table([o.row() for o in outcomes.values()], "tables/curve.json")
    runner.tracker.log_table(trials_rows(runner), "tables/trials.json")
    fig = curve_figure(list(outcomes.values()), ref_value, (ref_lo, ref_hi), sw.drop, sw.metric, verdict,
                       sw.reference)
    runner.tracker.log_figure(fig, "plots/curve.png")
    if not verdict.monotone:
        msg = f"sweep {runner.study_name}: {verdict.message}"
        warnings.warn(msg, stacklevel=2)
        runner.log("WARNING: " + msg)
    version = None
    if verdict.threshold is not None and runner.cfg.common.register:
        version = register(runner, parent_id, verdict.threshold)
    runner.log(f"sweep: {verdict.message}; fine-tunes spent: {n_ok} (+ references), failed {n_fail}, "
             f"pruned {n_pruned}")
    return version

def register(runner, parent_id: str, threshold: float) -> str | None:
    """Register the threshold trial's adapter as ``emd-<base>-mixture`` with alias ``threshold`` and the
    version tag ``threshold_ratio``; returns the version (None when the trial logged no adapter)."""
    done = runner.completed()
    trial = done.get((ratio_key(threshold), runner.seeds[0]))
    if trial is None or not trial.user_attrs.get(A_ADAPTER) or not trial.user_attrs.get(A_RUN):
        runner.log("sweep: the threshold trial logged no adapter; nothing to register")
        return None
    run_id = trial.user_attrs[A_RUN]
    parent = runner.tracker.get_run(parent_id)
    if parent.data.tags.get("emd.threshold_run_id") == run_id and parent.data.tags.get("emd.registered_model"):
        return parent.data.tags["emd.registered_model"].rsplit("/", 1)[-1]  # resumed after registering
    name = runner.registered_name()
    # threshold_ratio on the version: readers of models:/<name>@threshold need no parent run
    version = runner.tracker.register_adapter(run_id, name, aliases=["threshold"],
                                            tags={"base_model": runner.cfg.model.model, "ratio": f"{threshold:g}",
                                                  "threshold_ratio": f"{threshold:g}", "study": runner.study_name,
                                                  "metric": runner.cfg.sweep.metric,
                                                  "reference": runner.cfg.sweep.reference})
    runner.tracker.set_tags({"emd.threshold_run_id": run_id, "emd.registered_model": f"{name}/{version}"})
    runner.log(f"sweep: registered models:/{name}/{version} (alias threshold)")
    return version
