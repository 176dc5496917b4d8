"""What a study is and stores: its identity (content digest, name), the user attributes of its trials
and of the study itself (the study is the single source of truth every worker reads), the result."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import SweepConfig, to_flat_dict
from .outcome import Outcome
from .strategy import Verdict, ratio_key

if TYPE_CHECKING:
    from .objective import Problem

# Trial user attributes (the study is the single source of truth shared by all workers).
A_RATIO, A_SEED = "emd.ratio", "emd.seed"  # the point (also the enqueued fixed params)
A_SCORES = "emd.scores"  # item id -> score of the sweep metric
A_METRICS = "emd.metrics"  # a few headline metrics of the trial
A_RUN = "emd.mlflow_run_id"
A_FAIL = "emd.fail_reason"
A_ADAPTER = "emd.adapter"  # True when the trial's run holds an adapter under adapter/
# A claimed trial carries this reason until its process records another: a trial Optuna fails for a
# missing heartbeat keeps it (a finished trial takes no more attributes).
STALE_REASON = "stale: its process stopped sending heartbeats mid-trial (killed or hung)"
# Study user attributes.
S_CONTENT = "emd.content"
S_DIGEST = "emd.content_digest"
S_PARENT = "emd.parent_run_id"
S_EXPERIMENT = "emd.experiment"
S_REF = "emd.reference"  # + ".<kind>.<seed>" -> {"scores", "metrics"}
S_READY = "emd.ready"  # set once the main process enqueued its first plan: workers start planning after it


def point_of(t) -> tuple[float, int] | None:
    """(ratio, seed) of a trial (frozen or live): its user attributes, else its params."""
    ua = t.user_attrs
    if A_RATIO in ua and A_SEED in ua:
        return ratio_key(ua[A_RATIO]), int(ua[A_SEED])
    p = t.params  # a trial made outside emd: only its params say where it sits
    return (ratio_key(p["ratio"]), int(p["seed"])) if "ratio" in p and "seed" in p else None


# Config keys that do not change what one trial computes: a study may be resumed (or extended with
# more ratios and seeds, another strategy, drop or reference) with different values of these.
_NOT_CONTENT = {"study", "study_name", "strategy", "worker", "storage", "ratios", "seeds", "drop", "reference",
                "tracking_uri", "experiment", "register", "reuse_references", "seed", "share_verdicts"}


@dataclass
class SweepResult:
    """What ``emd sweep`` returns."""

    study_name: str
    storage: str  # redacted URL
    parent_run_id: str | None
    experiment: str
    verdict: Verdict | None  # None for a --worker process (the main process concludes)
    outcomes: dict[float, Outcome]
    n_finetunes: int  # COMPLETE trials of the study (references excluded)
    n_failed: int
    n_pruned: int
    ran_here: int  # trials this process ran
    model_version: str | None = None
    registered_name: str | None = None
    seconds: float = 0.0


def study_content(cfg: SweepConfig, problem: Problem) -> dict[str, Any]:
    """Everything that changes what one trial computes (its sha256 is the study's identity)."""
    flat = {k: v for k, v in to_flat_dict(cfg).items() if k not in _NOT_CONTENT}
    return {"config": flat, "problem": problem.describe()}


def content_digest(content: dict) -> str:
    """sha256 of a JSON-able dict (keys sorted)."""
    return hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode()).hexdigest()


def default_study_name(cfg: SweepConfig, content: dict) -> str:
    """``<study file stem>-<content digest[:8]>``: the same settings resume the same study, changed
    settings (model, data, training, evaluation, metric) start a new one."""
    stem = Path(cfg.sweep.study).stem if cfg.sweep.study else "sweep"
    return f"{stem}-{content_digest(content)[:8]}"
