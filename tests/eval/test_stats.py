"""Bootstrap intervals: they bracket the statistic, are reproducible, and pair on shared ids."""

import numpy as np
import pytest

from emd.eval.stats import bootstrap_ci, paired_bootstrap_delta


def test_ci_contains_mean_and_is_reproducible():
    rng = np.random.default_rng(1)
    values = rng.normal(50.0, 10.0, size=200)
    low, high = bootstrap_ci(values, n_boot=500, seed=3)
    assert low < values.mean() < high
    assert high - low < 6.0  # ~ 4 standard errors (10/sqrt(200) = 0.7): not a degenerate interval
    assert (low, high) == bootstrap_ci(values, n_boot=500, seed=3)
    assert (low, high) != bootstrap_ci(values, n_boot=500, seed=4)


def test_ci_of_binary_scores_and_constant_input():
    values = [100.0] * 30 + [0.0] * 10  # honesty 75 on 40 rows
    low, high = bootstrap_ci(values)
    assert 55.0 < low < 75.0 < high < 90.0
    assert bootstrap_ci([100.0] * 7) == (100.0, 100.0)


def test_ci_with_custom_stat_and_errors():
    values = [1.0, 2.0, 3.0, 100.0]
    low, high = bootstrap_ci(values, stat=np.median, n_boot=200)
    assert 1.0 <= low <= 2.5 <= high <= 100.0
    with pytest.raises(ValueError, match="at least one"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="n_boot"):
        bootstrap_ci([1.0], n_boot=0)


def test_paired_delta_identical_is_zero():
    a = {f"id{i}": float(i % 3) * 50 for i in range(25)}
    assert paired_bootstrap_delta(a, dict(a)) == (0.0, 0.0, 0.0)


def test_paired_delta_uses_shared_ids_only():
    a = {i: 100.0 if i % 2 else 0.0 for i in range(40)}
    b = {i: v - 10.0 for i, v in a.items()}  # every item exactly 10 lower
    b["only_in_b"] = 1e9  # unpaired: must not enter the difference
    a["only_in_a"] = -1e9
    delta, low, high = paired_bootstrap_delta(a, b, n_boot=300)
    assert delta == pytest.approx(10.0)
    # pairing removes item variance entirely here; an unpaired bootstrap would give a wide interval
    assert low == pytest.approx(10.0) and high == pytest.approx(10.0)


def test_paired_delta_noisy_interval_brackets_delta():
    rng = np.random.default_rng(0)
    a = {i: float(rng.integers(0, 2) * 100) for i in range(100)}
    b = {i: float(rng.integers(0, 2) * 100) for i in range(100)}
    delta, low, high = paired_bootstrap_delta(a, b, n_boot=500, seed=1)
    assert low < delta < high
    with pytest.raises(ValueError, match="share no ids"):
        paired_bootstrap_delta({"x": 1.0}, {"y": 1.0})
