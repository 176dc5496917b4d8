"""MASK through a real HTTP judge that misbehaves: retried faults leave the scores unchanged, a garbage
answer becomes a counted judge failure (never an evasion), and a rerun is answered from the cache.

The judge is ``openai:`` pointed at the stdlib test server of tests/judges (a subprocess, real HTTP);
the model under test is the embedded SmolLM2, generating once for all runs.
"""

from __future__ import annotations

import json

import pytest

from emd.eval.mask import load_mask, run_mask
from emd.judges import get_judge

# ``server``: the local judge server of tests/conftest.py (tests/judges/openai_server.py).

JUDGE = "openai:test-judge"
# Tiny backoff and a 1 s timeout keep the faults cheap; one worker makes request n map to query n.
JUDGE_KW = dict(max_retries=3, base_delay=0.01, max_delay=0.05, timeout=1.0, max_concurrency=1)


class MemoModel:
    """The real model, with each distinct generate call computed once (greedy, so repeats are equal)."""

    def __init__(self, model):
        self.model, self.memo, self.real_calls = model, {}, 0

    def generate(self, conversations, **kw):
        key = json.dumps([conversations, kw], sort_keys=True, default=str)
        if key not in self.memo:
            self.real_calls += 1
            self.memo[key] = self.model.generate(conversations, **kw)
        return list(self.memo[key])


@pytest.fixture(scope="module")
def memo_model(embedded_model):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield MemoModel(embedded_model)
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def items():
    """Two binary rows (belief = the provided fact) and two numerical rows (belief elicited)."""
    return load_mask(configs=["provided_facts", "statistics"], limit=2)


def _run(model, items, cache_dir):
    judge = get_judge(JUDGE, cache_dir=cache_dir, **JUDGE_KW)
    try:
        res = run_mask(model, judge, items, max_new_tokens=12, n_boot=200)
        return res, judge.stats
    finally:
        judge.close()


def _scores(res):
    return [(r["task_id"], r["outcome"], r["pressured_verdict"], r["belief_verdicts"]) for r in res.rows]


@pytest.mark.slow
def test_faults_recover_and_rerun_uses_cache(server, memo_model, items, tmp_path):
    clean, clean_stats = _run(memo_model, items, tmp_path / "clean")
    n_queries = server.requests
    assert n_queries == clean_stats.calls > 0 and clean.metrics["mask/n_judge_failures"] == 0

    server.control(reset=True)
    server.control(faults={"1": "429", "2": "500", "4": "slow", "6": "429", "7": "429", "9": "500"}, slow_s=2.5)
    faulty, stats = _run(memo_model, items, tmp_path / "faulty")
    assert server.stats()["faults"] == {"429": 3, "500": 2, "slow": 1}
    assert server.requests == n_queries + 6 and stats.retries == 6 and stats.failures == 0
    assert faulty.metrics == clean.metrics and _scores(faulty) == _scores(clean)

    server.control(reset=True)
    again, again_stats = _run(memo_model, items, tmp_path / "faulty")
    assert server.requests == 0 and again_stats.calls == 0
    assert again_stats.cache_hits == sum(clean_stats.by_state.values())  # every query slot, repeats included
    assert again.metrics == clean.metrics
    assert memo_model.real_calls == 2  # pressured + belief generation, shared by all three runs


@pytest.mark.slow
def test_persistent_garbage_is_a_judge_failure_not_an_evasion(server, memo_model, items, tmp_path):
    clean, _ = _run(memo_model, items, tmp_path / "clean")
    server.control(reset=True)
    # Request 1 is the first proposition query, the pressured answer of items[0]. Garbage is a
    # well-formed reply, so there is nothing to retry: the verdict is "unparsed".
    server.control(faults={"1": "garbage"})
    res, stats = _run(memo_model, items, tmp_path / "garbage")
    row = res.rows[0]
    assert row["pressured_state"] == "unparsed" and row["outcome"] == "judge_failure"
    assert row["judge_failures"].startswith("pressured: unparsed")
    assert res.metrics["mask/n_judge_failures"] == 1 and res.metrics["mask/provided_facts/n_scored"] == 1
    assert res.metrics["mask/n_evasion"] == clean.metrics["mask/n_evasion"] - (clean.rows[0]["outcome"] == "evasion")
    assert _scores(res)[1:] == _scores(clean)[1:]  # the other rows are untouched
    assert stats.by_state.get("unparsed") == 1

    # unparsed verdicts are not cached: the next run asks that one query again and recovers
    server.control(reset=True)
    healed, healed_stats = _run(memo_model, items, tmp_path / "garbage")
    assert server.requests == 1 and healed_stats.calls == 1
    assert healed.metrics == clean.metrics

    # garbage on every request, retries or not: every row is a judge failure, none an evasion
    server.control(reset=True, default_fault="garbage")
    broken, _ = _run(memo_model, items, tmp_path / "all-garbage")
    assert [r["outcome"] for r in broken.rows] == ["judge_failure"] * len(items)
    assert broken.metrics["mask/n_evasion"] == 0 and broken.metrics["mask/n_scored"] == 0
    assert "mask/honesty" not in broken.metrics
