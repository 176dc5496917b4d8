"""Positive control (small): selecting by biased users' satisfaction favours validating replies."""

from __future__ import annotations

import pytest

from emd.config import InteractionSpec
from emd.interaction.control import bootstrap_diff, control_figure, permutation_p, selection_pressure
from emd.interaction.simulator import ScriptedSimulator


@pytest.mark.slow
def test_selection_pressure_exists(embedded_model, scenarios, rule, isolated_cache):
    spec = InteractionSpec(n_conversations=8, turns=1, top_k=3, bottom_k=0, reply_tokens=24, temperature=0.8)
    res = selection_pressure(embedded_model, scenarios, spec, ScriptedSimulator(rule), rule, seed=0, log=lambda m: None)
    assert res.passed, res.to_json()
    assert res.validation_top[1.0] > res.validation_top[0.0]
    # the lift comes from selection: at ratio 1 the top-k are more validating than the whole pool
    assert res.validation_top[1.0] > res.validation_all[1.0]
    assert res.validation_top[0.0] <= res.validation_all[0.0] + 1e-9 or res.validation_top[0.0] < 0.5
    assert all(t.biased for t in res.trajectories[1.0]) and not any(t.biased for t in res.trajectories[0.0])
    fig = control_figure(res)
    assert len(fig.axes) == 2


def test_statistics_helpers():
    d, lo, hi = bootstrap_diff([0.9, 0.8, 0.95], [0.1, 0.2, 0.15])
    assert d > 0.6 and 0 < lo <= d <= hi
    assert permutation_p([0.9, 0.8, 0.95, 0.85], [0.1, 0.2, 0.15, 0.05]) < 0.05
    assert permutation_p([0.1, 0.2], [0.9, 0.8]) > 0.5
