"""The verdict cache under faults: a kill mid-batch, a damaged SQLite file, a damaged row.

Every test runs the real openai: judge against tests/judges/openai_server.py (a real local process)
and asserts what the server was asked, what the user is told, and that no paid-for answer is lost.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from emd.judges import PropositionQuery, get_judge
from emd.judges.cache import CACHE_FILENAME, cache_key

REPO = Path(__file__).resolve().parents[2]
A, B = "The lake is frozen.", "The lake is not frozen."
QUERIES = [PropositionQuery(A, B, f"Report {i}: " + r) for i, r in enumerate([
    "Yes, the lake is frozen solid.", "The lake is not frozen at all.", "Sorry, I can't say.",
    "It is neither.", "Ice covers the whole lake.", "It never froze this year.",
    "Frozen, definitely.", "No, it is not frozen."])]
EXPECTED = ["A", "B", "C", "D", "A", "B", "A", "B"]
FAST = dict(base_delay=0.01, max_delay=0.05, timeout=5.0, max_concurrency=1)

CHILD = """
import json, sys
from emd.judges import PropositionQuery, get_judge
qs = [PropositionQuery(*q) for q in json.loads(sys.argv[2])]
judge = get_judge("openai:rule-model", cache_dir=sys.argv[1], max_concurrency=1, timeout=300.0, max_retries=0)
print(json.dumps([v.label for v in judge.judge_propositions(qs)]), flush=True)
"""


def labels(verdicts):
    return [v.label if v.scored else v.state for v in verdicts]


def _rows(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1.0) as c:
            return c.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0]
    except sqlite3.Error:
        return 0


def test_key_format_is_stable():
    """Verdicts cached before emd.storage existed keep their keys (this value was computed then)."""
    q = PropositionQuery(A, B, "Oui, gelé — solide.")
    assert cache_key("openai:rule-model", "v1", "proposition", q, {"temperature": 0.0, "max_tokens": 32}) == \
        "9c74c2f7b6c40cb5f3a405246234e503b69e7f0b7208c6498d84b524c2930bf0"


def test_kill_mid_batch_keeps_answers_already_received(server, tmp_path):
    """3 of 8 answered, SIGKILL, rerun: the server is asked only the 5 remaining queries."""
    k = 3
    server.control(faults={str(k + 1): "slow"}, slow_s=120.0)  # the 4th answer never comes in time
    db = tmp_path / CACHE_FILENAME
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path),
                              json.dumps([[q.statement_a, q.statement_b, q.response] for q in QUERIES])],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120  # a safety net only: the loop ends on the condition
        while not (server.requests > k and _rows(db) == k):
            assert child.poll() is None, child.communicate()
            assert time.monotonic() < deadline, f"child never reached request {k + 1}"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    assert _rows(db) == k  # every answer received before the kill is on disk

    server.control(reset=True)
    judge = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    out = judge.judge_propositions(QUERIES)
    assert labels(out) == EXPECTED
    assert server.requests == len(QUERIES) - k  # only the remaining ones were sent again
    assert judge.stats.calls == len(QUERIES) - k and judge.stats.cache_hits == k
    judge.close()
    assert _rows(db) == len(QUERIES)


def test_each_verdict_is_stored_as_it_arrives(server, tmp_path):
    """Within one batch, answer i is in the cache before request i+1 is sent."""
    seen: list[int] = []
    judge = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    store = judge.cache
    orig = store.put

    def put(key, judge_id, kind, verdict):
        orig(key, judge_id, kind, verdict)
        seen.append(server.requests)  # requests the server had received when this row was written

    store.put = put
    assert labels(judge.judge_propositions(QUERIES)) == EXPECTED
    assert seen == list(range(1, len(QUERIES) + 1))
    judge.close()


def _fill(server, tmp_path, n=len(QUERIES)):
    judge = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    assert labels(judge.judge_propositions(QUERIES[:n])) == EXPECTED[:n]
    judge.close()
    server.control(reset=True)


def test_garbled_cache_file_is_moved_aside_and_rebuilt(server, tmp_path, caplog):
    db = tmp_path / CACHE_FILENAME
    garbage = b"this is not a database\x00" * 500
    db.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="emd.judges.cache"):
        judge = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    aside = [p for p in tmp_path.iterdir() if p.name.startswith(CACHE_FILENAME + ".corrupt-")]
    assert len(aside) == 1 and aside[0].read_bytes() == garbage  # the damaged file is kept, untouched
    assert str(db) in caplog.text and str(aside[0]) in caplog.text
    assert labels(judge.judge_propositions(QUERIES)) == EXPECTED
    judge.close()
    assert _rows(db) == len(QUERIES)


def test_garbled_cache_through_the_cli(server, tmp_path):
    """The judge-check command: exit code 0, a warning naming the file, no traceback."""
    db = tmp_path / CACHE_FILENAME
    db.write_bytes(b"\xff" * 8192)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, "-m", "emd", "judge-check", "--judge", "openai:rule-model",
                        "--cache-dir", str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr and str(db) in r.stderr and "moved it aside" in r.stderr
    assert "accuracy=" in r.stdout and _rows(db) > 0


def test_truncated_cache_file_is_moved_aside_and_rebuilt(server, tmp_path, caplog):
    _fill(server, tmp_path)
    db = tmp_path / CACHE_FILENAME
    con = sqlite3.connect(db)  # make the main file hold the rows, then cut it
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.executemany("INSERT INTO verdicts VALUES (?, 'x', 'proposition', ?, 0)",
                    [(f"pad{i}", json.dumps({"state": "scored", "raw": "p" * 400})) for i in range(200)])
    con.commit()
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    with caplog.at_level(logging.WARNING, logger="emd.judges.cache"):
        judge = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    assert str(db) in caplog.text and "moved it aside" in caplog.text
    assert labels(judge.judge_propositions(QUERIES)) == EXPECTED
    assert server.requests == len(QUERIES)  # the cut file could not be trusted: asked again
    judge.close()


def test_row_with_cut_json_is_a_miss_and_overwritten(server, tmp_path, caplog):
    _fill(server, tmp_path)
    db = tmp_path / CACHE_FILENAME
    con = sqlite3.connect(db)
    (key, verdict), = con.execute("SELECT key, verdict FROM verdicts ORDER BY key LIMIT 1").fetchall()
    con.execute("UPDATE verdicts SET verdict = ? WHERE key = ?", (verdict[: len(verdict) // 2], key))
    con.commit()
    con.close()
    with caplog.at_level(logging.WARNING, logger="emd.judges.cache"):
        judge = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
        out = judge.judge_propositions(QUERIES)
    assert labels(out) == EXPECTED  # the whole evaluation still runs
    assert server.requests == 1 and judge.stats.cache_hits == len(QUERIES) - 1  # only the bad row is re-asked
    assert str(db) in caplog.text and "do not decode" in caplog.text
    judge.close()
    con = sqlite3.connect(db)
    fixed = con.execute("SELECT verdict FROM verdicts WHERE key = ?", (key,)).fetchone()[0]
    con.close()
    assert json.loads(fixed) == json.loads(verdict)  # overwritten with the new, identical answer
    server.control(reset=True)
    again = get_judge("openai:rule-model", cache_dir=tmp_path, **FAST)
    assert labels(again.judge_propositions(QUERIES)) == EXPECTED and server.requests == 0
    again.close()
