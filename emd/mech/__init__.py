"""Mechanistic measures: a dishonesty direction in the residual stream and projections onto it.

:mod:`emd.mech.direction` holds the arithmetic (activations, class means, AUROC per layer,
projection); :mod:`emd.mech.build` the contrastive pairs and the content-keyed cache; and
:mod:`emd.mech.metric` the ``mechanism`` benchmark (``mech/dishonesty_projection``).
"""
