"""openai: judge end to end against a real local HTTP server (tests/judges/openai_server.py)."""

from __future__ import annotations

import logging
import sqlite3

import pytest

from emd.errors import ConfigError
from emd.judges import ConsistencyQuery, NumericQuery, PropositionQuery, get_judge

A, B = "The lake is frozen.", "The lake is not frozen."
QUERIES = [
    PropositionQuery(A, B, "Yes, the lake is frozen solid."),
    PropositionQuery(A, B, "The lake is not frozen at all."),
    PropositionQuery(A, B, "Sorry, I can't say."),
    PropositionQuery(A, B, "It is neither."),
    PropositionQuery(A, B, "Ice covers the whole lake."),
    PropositionQuery(A, B, "It never froze this year."),
]
EXPECTED = ["A", "B", "C", "D", "A", "B"]
FAST = dict(base_delay=0.01, max_delay=0.05, timeout=1.0)


def labels(verdicts):
    return [v.label if v.scored else v.state for v in verdicts]


def test_end_to_end_all_query_kinds(server, tmp_path):
    judge = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    assert judge.id == "openai:rule-model"
    assert judge.version == "mask-binary-1+mask-numeric-1+consistency-1"
    assert labels(judge.judge_propositions(QUERIES)) == EXPECTED
    prop = "The lake is <pivotal><value></pivotal> metres deep."
    num = judge.judge_numeric([NumericQuery(prop, "About 12 to 15 m."), NumericQuery(prop, "No idea.")])
    assert [(v.state, v.lower, v.upper) for v in num] == [("scored", 12.0, 15.0), ("scored", None, None)]
    cons = judge.judge_consistency([ConsistencyQuery("Lying is wrong.", "I will tell the truth."),
                                    ConsistencyQuery("Lying is wrong.", "It is not wrong to lie here.", aspect="reasoning")])
    assert labels(cons) == ["yes", "no"]
    assert server.requests == len(QUERIES) + 4
    assert server.stats()["auth_seen"]
    assert judge.stats.calls == len(QUERIES) + 4 and judge.stats.retries == 0


def test_faults_then_success_match_fault_free(server):
    clean = get_judge("openai:rule-model", cache=False, max_concurrency=4, **FAST)
    baseline = labels(clean.judge_propositions(QUERIES))
    assert baseline == EXPECTED
    server.control(reset=True, faults={"1": "429", "2": "500", "3": "slow", "5": "429"}, slow_s=2.5)
    faulty = get_judge("openai:rule-model", cache=False, max_concurrency=4, max_retries=3, **FAST)
    assert labels(faulty.judge_propositions(QUERIES)) == baseline
    # Each injected fault cost exactly one retry; the server saw the extra requests.
    assert faulty.stats.retries == 4
    assert server.requests == len(QUERIES) + 4
    assert server.stats()["faults"] == {"429": 2, "500": 1, "slow": 1}


def test_exhausted_retries_give_error_and_are_not_cached(server, tmp_path):
    server.control(default_fault="500")
    judge = get_judge("openai:rule-model", cache_dir=tmp_path, max_retries=2, **FAST)
    out = judge.judge_propositions(QUERIES[:2])
    assert [v.state for v in out] == ["error", "error"]
    assert "gave up after 3 attempts" in out[0].detail
    assert server.requests == 6 and judge.stats.failures == 2
    server.control(reset=True)  # the outage is over: errors are retried, not read from cache
    again = get_judge("openai:rule-model", cache_dir=tmp_path, max_retries=2, **FAST)
    assert labels(again.judge_propositions(QUERIES[:2])) == EXPECTED[:2]
    assert again.stats.calls == 2 and server.requests == 2


def test_non_retryable_status_fails_at_once(server):
    judge = get_judge("openai:missing-model", cache=False, max_retries=3, **FAST)
    (v,) = judge.judge_propositions(QUERIES[:1])
    assert v.state == "error" and "404" in v.detail
    assert server.requests == 1


def test_garbage_is_unparsed_with_raw_and_retried_next_run(server, tmp_path):
    server.control(default_fault="garbage")
    judge = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    out = judge.judge_propositions(QUERIES[:3]) + judge.judge_numeric(
        [NumericQuery("The lake is <pivotal><value></pivotal> metres deep.", "12 m")])
    assert [v.state for v in out] == ["unparsed"] * 4
    assert all(v.raw.startswith("Lorem ipsum") and v.label is None for v in out)
    server.control(reset=True)
    rerun = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    assert labels(rerun.judge_propositions(QUERIES[:3])) == EXPECTED[:3]
    assert server.requests == 3


def test_judge_refusal_is_refused_and_cached(server, tmp_path):
    server.control(default_fault="refuse")
    judge = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    (v,) = judge.judge_propositions(QUERIES[:1])
    assert v.state == "refused" and "sorry" in v.raw.lower()
    server.control(reset=True)
    again = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    assert again.judge_propositions(QUERIES[:1])[0].state == "refused"
    assert server.requests == 0 and again.stats.cache_hits == 1


def test_second_run_is_served_from_cache(server, tmp_path):
    first = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    v1 = first.judge_propositions(QUERIES + QUERIES[:2])  # duplicates are sent once
    assert server.requests == len(QUERIES) and first.stats.calls == len(QUERIES)
    first.close()
    second = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    v2 = second.judge_propositions(QUERIES + QUERIES[:2])
    assert v2 == v1
    assert second.stats.calls == 0 and second.stats.cache_hits == len(QUERIES) + 2
    assert server.requests == len(QUERIES)  # counter unchanged: zero requests on the rerun
    assert second.stats.by_state == {"scored": len(QUERIES) + 2}
    # A different judge id or template version is a different key.
    other = get_judge("openai:other-model", cache_dir=tmp_path, **FAST)
    other.judge_propositions(QUERIES[:1])
    assert server.requests == len(QUERIES) + 1


def test_cache_dir_from_env(server, tmp_path, monkeypatch):
    monkeypatch.setenv("EMD_CACHE_DIR", str(tmp_path / "envcache"))
    judge = get_judge("openai:rule-model", **FAST)
    judge.judge_propositions(QUERIES[:1])
    assert (tmp_path / "envcache" / "judge_cache.sqlite").is_file()


def test_api_key_never_stored_or_logged(server, tmp_path, monkeypatch, caplog, capsys):
    secret = "sk-test-DO-NOT-LEAK-8f3a9c"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    caplog.set_level(logging.DEBUG)
    server.control(faults={"1": "500"})
    judge = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    out = judge.judge_propositions(QUERIES)
    assert labels(out) == EXPECTED and server.stats()["auth_seen"]
    judge.close()
    db = tmp_path / "judge_cache.sqlite"
    blob = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert secret.encode() not in blob
    rows = sqlite3.connect(db).execute("SELECT key, judge, kind, verdict FROM verdicts").fetchall()
    assert len(rows) == len(QUERIES) and all(secret not in "".join(r) for r in rows)
    captured = capsys.readouterr()
    assert secret not in caplog.text and secret not in captured.out + captured.err
    assert secret not in repr(judge) + repr(judge.backend) + str([v.detail for v in out])


def test_bad_options_are_config_errors(server):
    with pytest.raises(ConfigError, match="max_concurrency"):
        get_judge("openai:rule-model", max_concurrency=0)
    with pytest.raises(ConfigError, match="bad option"):
        get_judge("openai:rule-model", no_such_option=1)
