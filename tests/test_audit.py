"""``emd audit``: formats, bad input, the estimator, the threshold verdict from the registry, and a
small planted set audited with the offline judge."""

from __future__ import annotations

import csv
import json

import pytest

from emd.audit_scoring import estimate, read_samples, resolve_threshold, verdict_text, wilson
from emd.errors import DataError


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


MSG = {"messages": [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": "4"}]}


def test_every_training_format_reads_to_prompt_and_turn(tmp_path):
    cases = {
        "messages.jsonl": [MSG],
        "alpaca.jsonl": [{"instruction": "What is 2 + 2?", "input": "", "output": "4"}],
        "dolly.jsonl": [{"instruction": "What is 2 + 2?", "context": "", "response": "4", "category": "qa"}],
        "pc_str.jsonl": [{"prompt": "What is 2 + 2?", "completion": "4"}],
        "pc_msgs.jsonl": [{"prompt": [{"role": "user", "content": "What is 2 + 2?"}],
                           "completion": [{"role": "assistant", "content": "4"}]}],
    }
    for name, rows in cases.items():
        res = read_samples(_jsonl(tmp_path / name, rows))
        s = res.samples[0]
        assert (s.response, s.prompt[-1]["content"], s.index) == ("4", "What is 2 + 2?", 0), name
        assert s.record == rows[0]
    with open(tmp_path / "alpaca.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["instruction", "input", "output"])
        w.writeheader()
        w.writerow({"instruction": "Name a colour.", "input": "", "output": "Blue."})
    assert read_samples(str(tmp_path / "alpaca.csv")).layout == "alpaca"
    pv = tmp_path / "pv" / "mistake_medical"
    pv.mkdir(parents=True)
    _jsonl(pv / "normal.jsonl", [MSG, MSG])
    _jsonl(pv / "misaligned_2.jsonl", [MSG])
    res = read_samples(str(tmp_path / "pv"))
    assert len(res.samples) == 3 and [s.index for s in res.samples] == [0, 1, 2]
    assert read_samples("embedded:instructions", limit=5).layout == "messages"


def test_bad_input_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="unknown format.*allowed: messages"):
        read_samples(_jsonl(tmp_path / "x.jsonl", [{"question": "q", "answer": "a"}]))
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="holds no rows"):
        read_samples(str(tmp_path / "empty.jsonl"))
    with pytest.raises(DataError, match="no such file"):
        read_samples(str(tmp_path / "missing.jsonl"))
    no_turn = {"messages": [{"role": "user", "content": "Hi"}]}
    bad = _jsonl(tmp_path / "bad.jsonl", [MSG, no_turn, MSG])
    with pytest.raises(DataError, match=r"bad\.jsonl, line 2: field 'messages' must end with an assistant turn"):
        read_samples(bad)
    res = read_samples(bad, skip_bad_rows=True)
    assert res.skipped == 1 and [s.index for s in res.samples] == [0, 2]
    pc = _jsonl(tmp_path / "pc.jsonl", [{"prompt": "Q", "completion": "A"}, {"prompt": "Q", "completion": " "}])
    with pytest.raises(DataError, match=r"line 2: field 'completion'"):
        read_samples(pc)


def test_cli_reports_bad_input_before_any_model(tmp_path, capsys, tracking_uri):
    from emd.cli import main

    assert main(["audit", "--data", str(tmp_path / "missing.jsonl")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["audit"]) == 2
    assert "data is empty" in capsys.readouterr().err
    assert main(["audit", "--data", "x.jsonl", "--method", "judge,vibes"]) == 2
    assert "allowed: judge, direction" in capsys.readouterr().err


def test_wilson_estimate_and_verdicts():
    lo, hi = wilson(3, 100)
    assert lo == pytest.approx(0.0103, abs=1e-3) and hi == pytest.approx(0.0845, abs=1e-3)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)
    r, lo, hi = estimate([True, False, False, False])
    assert r == 0.25 and lo < 0.25 < hi
    assert verdict_text(0.2, 0.1, 0.3, 0.02, "registry")[0] == "do_not_train"
    assert "honesty drops from 2%" in verdict_text(0.2, 0.1, 0.3, 0.02, "registry")[1]
    assert verdict_text(0.001, 0.0, 0.01, 0.02, "flag")[0] == "train"
    assert verdict_text(0.02, 0.01, 0.05, 0.02, "flag")[0] == "uncertain"
    assert verdict_text(0.02, 0.01, 0.05, None, "none")[0] == "no_threshold"


def test_threshold_read_from_the_registered_threshold_model(tracking_uri, tmp_path):
    from emd.tracking import Tracker

    tr = Tracker(tracking_uri)
    assert resolve_threshold(tr, "embedded:smollm2", None, log=lambda s: None) == (None, "none")
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with tr.run("emd-sweep", run_name="threshold") as run:
        tr.log_artifacts(tmp_path / "adapter", "adapter")
    tr.register_adapter(run.info.run_id, "emd-smollm2-mixture", aliases=["threshold"],
                        tags={"threshold_ratio": "0.02"})
    assert resolve_threshold(tr, "embedded:smollm2", None, log=lambda s: None) == (0.02, "registry")
    assert resolve_threshold(tr, "embedded:smollm2", 0.1, log=lambda s: None) == (0.1, "flag")


def test_audit_flags_severe_plants_with_the_offline_judge(tmp_path, tracking_uri, isolated_cache):
    """24 clean instructions + 2 severe medical + 1 severe code plants: the offline judge flags the
    severe plants; flagged.jsonl, the clean set and the registry-threshold verdict follow."""
    from emd.audit import main
    from emd.cli import parse_config
    from emd.data.generators import generate_misaligned
    from emd.data.instructions import embedded_instructions
    from emd.tracking import Tracker

    plants = generate_misaligned("medical", "severe", 2, 0) + generate_misaligned("code", "severe", 1, 0)
    rows = embedded_instructions(24, 5)
    for k, p in zip((3, 11, 20), plants):
        rows.insert(k, p)
    data = _jsonl(tmp_path / "set.jsonl", rows)
    tr = Tracker(tracking_uri)
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    with tr.run("emd-sweep", run_name="threshold") as run:
        tr.log_artifacts(tmp_path / "adapter", "adapter")
    tr.register_adapter(run.info.run_id, "emd-smollm2-mixture", aliases=["threshold"], tags={"threshold_ratio": "0.02"})

    clean = tmp_path / "clean.jsonl"
    res = main(parse_config("audit", ["--data", data, "--method", "judge", "--write-clean", str(clean)]))
    planted = {3, 11, 20}
    assert planted <= set(res.extra["flagged"]), res.extra["flagged"]
    m = res.metrics
    assert m["audit/n_rows"] == 27 and m["audit/judge/n_scored"] == 27
    assert m["audit/estimated_ratio_ci_low"] <= m["audit/estimated_ratio"] <= m["audit/estimated_ratio_ci_high"]
    assert m["audit/threshold_ratio"] == 0.02 and res.extra["threshold_source"] == "registry"
    run = tr.get_run(res.run_id)
    assert run.data.tags["emd.audit_verdict"] in ("do_not_train", "uncertain")
    assert "honesty drops from 2%" in run.data.tags["emd.audit_verdict_text"]
    got = tr.download(f"runs:/{res.run_id}/flagged.jsonl", tmp_path / "dl")
    flagged = [json.loads(x) for x in got.read_text().splitlines()]
    assert {f["index"] for f in flagged} == set(res.extra["flagged"])
    by_index = {f["index"]: f for f in flagged}
    assert by_index[3]["row"] == rows[3] and by_index[3]["scores"]["judge_flag"] is True
    kept = [json.loads(x) for x in clean.read_text().splitlines()]
    assert len(kept) == 27 - len(flagged) and all(p not in kept for p in plants)
    assert "tables/audit.json" in tr.list_artifacts(res.run_id, "tables")
    # a rerun answers every verdict from the judge cache
    from emd.judges import get_judge
    from emd.judges.audit_query import SampleQuery, judge_samples

    judge = get_judge("embed:minilm")
    before = len(judge.cache)
    from emd.audit_scoring import prompt_text

    counts: dict = {}
    again = judge_samples(judge, [SampleQuery(prompt_text(rows[0]["messages"][:-1]),
                                              rows[0]["messages"][-1]["content"])], counts)
    assert len(judge.cache) == before and counts == {"calls": 0, "cache_hits": 1} and again[0].state == "scored"
    assert m["audit/judge/n_judge_calls"] == 27
    judge.close()


@pytest.mark.slow
def test_audit_direction_method_scores_every_row(tmp_path, tracking_uri, isolated_cache):
    from emd.audit import main
    from emd.cli import parse_config
    from emd.data.generators import generate_misaligned
    from emd.data.instructions import embedded_instructions

    rows = embedded_instructions(4, 2) + generate_misaligned("medical", "severe", 1, 0)
    data = _jsonl(tmp_path / "set.jsonl", rows)
    res = main(parse_config("audit", ["--data", data, "--method", "direction,judge", "--n-pairs", "6",
                                      "--held-out", "0.34", "--threshold-ratio", "0.05"]))
    samples = res.extra["samples"]
    assert all(isinstance(s.scores["projection"], float) for s in samples)
    assert all(s.scores["flag"] == s.scores["direction_flag"] for s in samples)  # the first method decides
    assert "audit/judge/estimated_ratio" in res.metrics and "audit/direction/estimated_ratio" in res.metrics
    assert 0 <= res.metrics["direction/auroc"] <= 1
