"""emd/openai_client.py against the real local judge server (tests/judges/openai_server.py) and a
refused port: configuration checks, the start-up check, timeouts and retries as settings, the key
kept out of every error."""

from __future__ import annotations

import threading

import pytest

from emd.errors import ConfigError, JudgeError
from emd.openai_client import OpenAIClient, check_reachable, scrub

DEAD = "http://127.0.0.1:9/v1"  # port 9 on 127.0.0.1 refuses connections
MSG = [{"role": "user", "content": "Label this. <response>The lake is frozen.</response>"}]


@pytest.fixture
def no_openai_env(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_neither_variable_set_refuses_to_build_a_client(no_openai_env):
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL.*OPENAI_API_KEY"):
        OpenAIClient("gpt-x")
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        check_reachable("gpt-x")


def test_bad_settings_name_the_setting(server):
    for kw, name in [(dict(timeout=0), "timeout"), (dict(max_retries=-1), "max_retries"),
                     (dict(max_concurrency=0), "max_concurrency")]:
        with pytest.raises(ConfigError, match=name):
            OpenAIClient("rule-model", **kw)


def test_check_passes_on_a_live_server_without_a_completion(server):
    check_reachable("rule-model")
    assert server.requests == 0  # GET /models only; the test server answers it with 404 = reachable


def test_check_names_the_url_of_a_dead_server_and_never_the_key(no_openai_env, monkeypatch):
    secret = "sk-test-DO-NOT-LEAK-41b7"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with pytest.raises(JudgeError, match="127.0.0.1:9") as e:
        check_reachable("rule-model", base_url=DEAD, timeout=2)
    assert secret not in str(e.value) and "OPENAI_BASE_URL" in str(e.value)


def test_timeout_and_retries_are_settings(server):
    server.control(default_fault="slow", slow_s=2.5)
    client = OpenAIClient("rule-model", timeout=0.5, max_retries=0)
    c = client.complete(MSG, max_tokens=4)
    assert c.status == "error" and "timed out after 0.5 s" in c.detail and c.attempts == 1
    assert server.requests == 1 and client.stats.failures == 1 and client.stats.retries == 0
    server.control(reset=True, default_fault="500")
    client = OpenAIClient("rule-model", timeout=1, max_retries=2, base_delay=0.01, max_delay=0.02)
    c = client.complete(MSG, max_tokens=4)
    assert c.status == "error" and "gave up after 3 attempts" in c.detail and "HTTP 500" in c.detail
    assert server.requests == 3 and client.stats.calls == 3 and client.stats.retries == 2
    assert client.stats.latency_s > 0
    server.control(reset=True, faults={"1": "429"})
    c = client.complete(MSG, max_tokens=4)
    assert (c.status, c.text, c.attempts) == ("ok", "A", 2)


def test_non_retryable_answer_is_one_attempt(server):
    client = OpenAIClient("missing-model", max_retries=3, base_delay=0.01)
    c = client.complete(MSG)
    assert c.status == "error" and "404" in c.detail and "not retried" in c.detail and server.requests == 1


def test_map_keeps_order_and_bounds_the_workers(server):
    client = OpenAIClient("rule-model", max_concurrency=3)
    active, peak, lock = [0], [0], threading.Lock()

    def one(i):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return client.complete(MSG, max_tokens=4).text + str(i)
        finally:
            with lock:
                active[0] -= 1

    assert client.map(one, range(10)) == [f"A{i}" for i in range(10)]
    assert 1 <= peak[0] <= 3 and server.requests == 10


def test_key_is_scrubbed_from_failed_requests(server, monkeypatch):
    secret = "sk-test-DO-NOT-LEAK-93cc"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    client = OpenAIClient("rule-model", base_url=DEAD, timeout=1, max_retries=1, base_delay=0.0)
    c = client.complete(MSG)
    assert c.status == "error" and "cannot connect to http://127.0.0.1:9/v1" in c.detail
    assert secret not in c.detail + repr(client)
    assert scrub(f"Incorrect API key provided: {secret}") == "Incorrect API key provided: ***"
    assert scrub("Authorization: Bearer abc.def") == "Authorization: Bearer ***"
    assert scrub("other sk-live-0123456789abcdef key") == "other *** key"


def test_retry_delay_honours_retry_after_and_jitters():
    import random

    from emd.openai_client import MAX_RETRY_AFTER_S, retry_delay

    rng = random.Random(0)
    assert retry_delay(0, {"retry-after": "2.5"}, 0.5, 8.0, rng) == 2.5
    assert retry_delay(3, {"retry-after-ms": "250"}, 0.5, 8.0, rng) == 0.25
    assert retry_delay(0, {"retry-after": str(MAX_RETRY_AFTER_S + 1)}, 0.5, 8.0, rng) is None  # give up instead
    waits = [retry_delay(n, {"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.5, 8.0, rng) for n in range(6)]
    for n, w in enumerate(waits):  # an HTTP date falls back to capped exponential backoff with jitter
        cap = min(8.0, 0.5 * 2 ** n)
        assert cap / 2 <= w <= cap
    assert len({round(retry_delay(1, None, 1.0, 8.0, rng), 6) for _ in range(20)}) > 1  # not lockstep
