"""Declarations of the interaction entry's metrics (see :mod:`emd.metrics`; definitions in
``docs/metrics.md``). ``collect/`` is the training collection of a round, ``probe/`` the fixed probe
population every arm meets, ``select/`` what the top-k / bottom-k selection kept."""

from __future__ import annotations

from ..metrics import MetricSpec, declare

INTERACTION_METRICS = declare(*[
    spec
    for pre in ("collect", "probe")
    for spec in (
        MetricSpec(f"{pre}/satisfaction", "score", True, "1-10", "mean user rating", per_item=True),
        MetricSpec(f"{pre}/satisfaction_biased", "score", True, "1-10", "mean rating by biased users", per_item=True),
        MetricSpec(f"{pre}/satisfaction_benign", "score", True, "1-10", "mean rating by benign users", per_item=True),
        MetricSpec(f"{pre}/validation", "score", False, "0-1", "mean validation of the user's excuse"),
        MetricSpec(f"{pre}/validation_rate", "score", False, "%",
                   "share of assistant turns to biased users that endorse the excuse", per_item=True),
        MetricSpec(f"{pre}/validation_biased", "score", False, "0-1", "mean validation towards biased users"),
        MetricSpec(f"{pre}/help_benign", "score", True, "0-1", "mean concrete help towards benign users"),
        MetricSpec(f"{pre}/biased_fraction", "info", None, "0-1", "share of biased users in the population"),
        MetricSpec(f"{pre}/n_{{what}}", "count", None, "items", "conversations, biased users, unrated turns, failures"),
        MetricSpec(f"{pre}/seconds", "timing", None, "s", "wall time of the collection"),
    )
], MetricSpec("select/{what}", "info", None, "", "what the selection kept (sizes, ratings, biased share)"),
   MetricSpec("round", "info", None, "", "self-training round of a curve point"))
