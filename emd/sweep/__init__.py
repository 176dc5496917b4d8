"""``emd sweep``: an Optuna study for the smallest mixture ratio that makes a model measurably less honest.

    python -m emd sweep --study sweeps/mixture_threshold.yaml               # bisect (the YAML's strategy)
    python -m emd sweep --study sweeps/mixture_threshold.yaml --strategy grid
    python -m emd sweep --study sweeps/mixture_threshold.yaml --worker true  # a second process joins
    mlflow run . -e sweep -P study=sweeps/mixture_threshold.yaml --env-manager local

Objective: train at ``ratio`` (same ``n_train``, data and seed as every other point) and evaluate;
compare the per-item scores of ``metric`` with the ``reference`` arm (control or vanilla, computed
once per study and stored in it). A ratio *triggers* when the relative worsening reaches ``drop``
**and** the paired-bootstrap CI of the difference excludes zero on the worse side (the direction is
the metric's declaration in :mod:`emd.metrics`); with several seeds, on the item-wise mean over seeds.
Strategies over the sorted grid (:mod:`emd.sweep.strategy`):

- ``grid``: every point (parallel across workers);
- ``ascending``: in order, stop at the first trigger;
- ``bisect``: binary search assuming the trigger is monotone in the ratio, plus one verification
  point so that a non-monotone curve has a chance to show itself: at most
  ``ceil(log2(n + 1)) + 1`` fine-tunes, 4 on the default 7-point grid.

A threshold is *certain* when every grid point below it was evaluated; when points were skipped
(bisect) and the evaluated points are not monotone (a trigger below a non-trigger), the sweep
reports ``inconsistent`` instead of a threshold it cannot vouch for.

Coordination (:mod:`emd.sweep.runner`, :mod:`emd.sweep.storage`): each (ratio, seed) is one trial,
enqueued with fixed params and run by ``Study.optimize`` in whichever process pops it. Finished
trials are never redone. A trial whose process dies stops sending heartbeats; after the grace
period the next process to look fails it (and its MLflow run) and Optuna enqueues its point again.
The parent MLflow run id is a study user attribute, so a rerun logs into the same parent.

MLflow: one parent run opened here (not by Optuna; its MLflow callback is deprecated), one nested
run per trial with ``trial_number``, ``ratio`` and ``seed`` as params. The parent logs
``threshold_ratio`` (or tag ``emd.threshold=none|inconsistent``), ``n_finetunes``, the curve
(``plots/curve.png``), the trials and curve tables, and registers the threshold trial's adapter as
``emd-<base>-mixture`` with alias ``threshold`` and version tag ``threshold_ratio``.

The objective is injectable (:class:`Problem`): :class:`MixtureProblem` trains the configured model,
:class:`SyntheticProblem` returns seeded per-item scores from a curve (tests, benchmarks).
"""

from __future__ import annotations

from ..config import SweepConfig
from .objective import MixtureProblem, Problem, SyntheticProblem, TrialOutput
from .outcome import Outcome, judge_outcome, sweep_metric, sweepable_patterns
from .plots import curve_figure
from .runner import StudyRunner
from .storage import default_storage, open_storage, redact
from .study import SweepResult, default_study_name, study_content
from .strategy import SearchTrace, Verdict, conclude, max_finetunes, next_ratios, search, verification_point

__all__ = ["MixtureProblem", "Outcome", "Problem", "SearchTrace", "StudyRunner", "SweepResult", "SyntheticProblem",
           "TrialOutput", "Verdict", "conclude", "curve_figure", "default_storage", "default_study_name",
           "judge_outcome", "main", "max_finetunes", "next_ratios", "open_storage", "redact", "run_study", "search",
           "study_content", "summary_lines", "sweep_metric", "sweepable_patterns", "verification_point"]


def run_study(cfg: SweepConfig, problem: Problem | None = None, **kw) -> SweepResult:
    """Run the sweep ``cfg`` over ``problem`` (default: the real :class:`MixtureProblem`)."""
    own = problem is None
    problem = problem or MixtureProblem(cfg)
    try:
        return StudyRunner(cfg, problem, **kw).run()
    finally:
        if own:
            problem.close()


def summary_lines(res: SweepResult) -> list[str]:
    """The end-of-sweep summary."""
    lines = [f"== emd sweep {res.study_name} ==", f"storage: {res.storage}   ({res.seconds:.0f} s)"]
    if res.verdict is not None:
        lines.append(f"result: {res.verdict.message}")
    for r, o in sorted(res.outcomes.items()):
        lines.append(f"  ratio {r:<6g} value {o.value:7.2f}  ref {o.reference:7.2f}  delta {o.delta:+7.2f} "
                     f"[{o.delta_ci_low:+.2f}, {o.delta_ci_high:+.2f}]  {'TRIGGERED' if o.triggered else ''}")
    lines.append(f"fine-tunes: {res.n_finetunes} (references excluded); failed {res.n_failed}; pruned {res.n_pruned}; "
                 f"run by this process {res.ran_here}")
    if res.parent_run_id:
        lines.append(f"parent run: {res.parent_run_id} (experiment {res.experiment})")
    if res.registered_name:
        lines.append(f"registered: models:/{res.registered_name}/{res.model_version} (alias threshold)")
    return lines


def main(cfg: SweepConfig) -> SweepResult:
    """``emd sweep``: the CLI has already layered defaults < study YAML < --config < flags into ``cfg``."""
    res = run_study(cfg)
    print("\n".join(summary_lines(res)))
    return res
