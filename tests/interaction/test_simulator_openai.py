"""The openai: user simulator against a real OpenAI-compatible server on 127.0.0.1.

The server is tests/interaction/user_server.py, started as a subprocess (a real process, not a patched client).
"""

from __future__ import annotations

import pytest

from emd.interaction.dialogue import collect
from emd.interaction.personas import build_population
from emd.interaction.selection import select
from emd.interaction.simulator import OpenAISimulator, get_simulator, parse_rating


def test_parse_rating():
    assert parse_rating("7") == 7.0 and parse_rating("Rating: 10/10") == 10.0 and parse_rating("I'd say 3.") == 3.0
    assert parse_rating("no number here") is None and parse_rating("11") is None and parse_rating("2.5") is None
    assert parse_rating("0") is None


@pytest.mark.slow
def test_openai_simulator_plays_and_rates_through_local_server(user_server, embedded_model, scenarios, rule,
                                                                monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", user_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-secret")
    user_server.control(reset=True, unrated=[2])  # the 2nd rating answer carries no number
    sim = get_simulator("openai:user-sim", max_concurrency=1, base_delay=0.01)
    assert isinstance(sim, OpenAISimulator) and "sk-test" not in repr(sim)
    specs = build_population(scenarios, 3, 1.0, seed=2)
    trajs = collect(embedded_model, specs, sim, turns=2, temperature=0.9, reply_tokens=8, seed=1, rule=rule)

    stats = user_server.stats()
    assert stats["kinds"] == {"background": 3, "opening": 3, "rating": 6, "turn": 3}
    for t in trajs:
        assert "server-written persona" in t.persona["background"]
        assert t.messages[1]["content"].startswith("SERVER-OPENING")
        assert t.messages[3]["content"].startswith("SERVER-TURN")
    values = [r["value"] for t in trajs for r in t.ratings]
    assert values.count(None) == 1 and set(values) - {None} <= {3.0, 9.0}
    unrated = [r for t in trajs for r in t.ratings if r["value"] is None][0]
    assert unrated["status"] == "unrated" and "rather not" in unrated["raw"]
    # the trajectory with the missing rating is recorded but never selected
    sel = select(trajs, top_k=1, bottom_k=1)
    assert sel.n_eligible == 2 and len(sel.excluded) == 1
    bad = next(t for t in trajs if t.id in sel.excluded)
    assert bad.n_unrated == 1 and not bad.complete
    sim.close()


def test_unreachable_server_gives_error_ratings_not_guesses(scenarios, monkeypatch):
    # port 9 on 127.0.0.1 refuses connections: every request fails after the retries
    sim = OpenAISimulator("user-sim", base_url="http://127.0.0.1:9/v1", max_retries=1, base_delay=0.0, timeout=2)
    specs = build_population(scenarios, 2, 0.5, seed=0)
    hist = [[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]] * 2
    ratings = sim.rate(specs, hist)
    assert [r.status for r in ratings] == ["error", "error"] and all(r.value is None for r in ratings)
    assert sim.reply(specs, hist, ratings) == [None, None]
    assert sim.failures == 4


def test_unknown_simulator_is_rejected():
    from emd.errors import ConfigError

    with pytest.raises(ConfigError, match="allowed: scripted, openai:<model>"):
        get_simulator("gpt4")
    with pytest.raises(ConfigError):
        get_simulator("openai:")
