"""What a study stores: the user attributes of its trials and of the study itself (the study is the
single source of truth every worker reads)."""

from __future__ import annotations

from .strategy import ratio_key

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
