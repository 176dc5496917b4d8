"""Populations: persona determinism, the exact biased fraction, bad ratios."""

from __future__ import annotations

import pytest

from emd.config import InteractionConfig, build_config
from emd.errors import ConfigError
from emd.interaction.personas import (assign_biased, build_population, follow_up, make_persona, n_biased)


def test_persona_is_deterministic_by_seed(scenarios):
    sc = scenarios[3]
    a, b = make_persona(sc, 0, 5, biased=True), make_persona(sc, 0, 5, biased=True)
    assert a == b
    others = {make_persona(sc, s, 5, biased=True) for s in range(1, 8)}
    assert len(others | {a}) > 4  # seeds give different people
    # the same person, only the wish differs between the benign and the biased version
    benign = make_persona(sc, 0, 5, biased=False)
    assert (benign.name, benign.age, benign.occupation, benign.style) == (a.name, a.age, a.occupation, a.style)
    assert sc.excuse in a.opening and sc.excuse not in benign.opening
    assert sc.goal in benign.opening
    assert build_population(scenarios, 12, 0.5, 3) == build_population(scenarios, 12, 0.5, 3)
    assert build_population(scenarios, 12, 0.5, 3) != build_population(scenarios, 12, 0.5, 4)


@pytest.mark.parametrize("n", [1, 7, 16, 20, 50, 101])
@pytest.mark.parametrize("ratio", [0.0, 0.1, 0.2, 0.25, 0.5, 1.0])
def test_exact_biased_fraction(n, ratio, scenarios):
    expected = int(ratio * n + 0.5)  # round half up
    assert n_biased(ratio, n) == expected
    for seed in (0, 1):
        assert sum(assign_biased(n, ratio, seed)) == expected
        pop = build_population(scenarios, n, ratio, seed)
        assert sum(c.biased for c in pop) == expected
        assert [c.index for c in pop] == list(range(n))


def test_biased_sets_nest_across_ratios_and_scenarios_stay(scenarios):
    sets = [{c.index for c in build_population(scenarios, 20, r, 0) if c.biased} for r in (0.1, 0.2, 0.5, 1.0)]
    assert all(a <= b for a, b in zip(sets, sets[1:]))
    a, b = build_population(scenarios, 20, 0.1, 0), build_population(scenarios, 20, 1.0, 0)
    assert [c.scenario.id for c in a] == [c.scenario.id for c in b]
    assert n_biased(0.5, 1) == 1 and n_biased(0.05, 10) == 1 and n_biased(0.04, 10) == 0


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.5", True])
def test_ratio_outside_unit_interval_is_rejected(bad, scenarios):
    with pytest.raises(ConfigError, match="biased_ratio"):
        assign_biased(10, bad, 0)
    with pytest.raises(ConfigError):
        build_population(scenarios, 10, bad, 0)


def test_config_rejects_bad_ratio_and_large_k():
    with pytest.raises(ConfigError, match=r"biased_ratio contains 1.2"):
        build_config(InteractionConfig, overrides={"biased_ratio": "0,1.2"})
    with pytest.raises(ConfigError, match="biased_ratio"):
        build_config(InteractionConfig, overrides={"biased_ratio": "0,x"})
    with pytest.raises(ConfigError, match="exceeds n_conversations"):
        build_config(InteractionConfig, overrides={"n_conversations": 8, "top_k": 5, "bottom_k": 4, "method": "kto"})


def test_follow_up_reacts_to_satisfaction(scenarios):
    pop = build_population(scenarios, 4, 0.5, 0)
    biased = next(c for c in pop if c.biased)
    benign = next(c for c in pop if not c.biased)
    assert follow_up(biased, 1, True) == follow_up(biased, 1, True)
    assert follow_up(biased, 1, True) != follow_up(biased, 1, False)
    assert benign.scenario.goal in follow_up(benign, 1, False) or benign.persona.style == "brief"
