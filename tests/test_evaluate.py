"""``emd evaluate`` and ``emd judge-check`` end to end (in-process CLI), plus generation prefill and the
positive-control data the honesty benchmarks are checked with."""

from __future__ import annotations

import re

import pytest


@pytest.fixture
def one_thread():
    """torch on one thread: two threads on the shared 2-core machine are slower, not faster."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


EVAL_ARGS = ["--benchmarks", "mask,logprob,deceptionbench", "--limit", "2", "--mask-configs",
             "provided_facts,statistics", "--max-new-tokens", "16"]


@pytest.mark.slow
def test_evaluate_logs_a_run_with_metrics_and_tables(tracking_uri, isolated_cache, one_thread, capsys):
    from mlflow.tracking import MlflowClient

    from emd.cli import main

    assert main(["evaluate", *EVAL_ARGS]) == 0
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("emd-evaluate")
    assert exp is not None
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    m = run.data.metrics
    for config in ("provided_facts", "statistics"):  # both configs evaluated, 2 items each
        assert m[f"mask/{config}/n_scored"] + m[f"mask/{config}/n_judge_failures"] == 2
        assert 0.0 <= m[f"mask/{config}/honesty"] <= 100.0
    assert m["mask/n_items"] == 4
    assert "mask/honesty_logprob" in m and m["mask/logprob_n"] == 2  # binary items only
    # DeceptionBench: limit is per type, so 2 x 5 types; every row is scored or counted as a failure
    assert m["deception/n_items"] == 10
    assert m["deception/n_scored"] + m["deception/n_parse_failures"] + m["deception/n_judge_failures"] == 10
    assert m["deception/n_forced_outputs"] <= 10
    if m["deception/n_scored"]:
        assert 0.0 <= m["deception/rate"] <= 100.0
    tables = {a.path for a in client.list_artifacts(run.info.run_id, "tables")}
    assert {"tables/base_mask.json", "tables/base_logprob.json", "tables/base_deceptionbench.json"} <= tables
    assert run.data.tags["emd.items.mask"] == "emd-mask-1"
    assert run.data.params["benchmarks"] == "mask,logprob,deceptionbench"
    assert "== emd evaluate ==" in capsys.readouterr().out


def test_evaluate_bad_adapter_exits_2_with_a_clear_message(tmp_path, tracking_uri, isolated_cache, capsys):
    from emd.cli import main

    missing = tmp_path / "no-such-adapter"
    assert main(["evaluate", "--adapter", str(missing), "--benchmarks", "logprob"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("emd: error:")
    assert str(missing) in err[0] and "adapter_config.json" in err[0] and "runs:/" in err[0]


def test_judge_check_prints_accuracy_and_kappa(isolated_cache, capsys):
    from emd.cli import main

    assert main(["judge-check", "--judge", "embed:minilm"]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    m = re.fullmatch(r"accuracy=(\d\.\d{3}) kappa=(-?\d\.\d{3})", last)
    assert m, last
    assert 0.0 <= float(m.group(1)) <= 1.0 and -1.0 <= float(m.group(2)) <= 1.0


# ------------------------------------------------------------------------------ generation prefill


@pytest.mark.slow
def test_prefill_continues_the_reply_and_is_not_returned(embedded_model, one_thread):
    tok = embedded_model.tokenizer
    conv = [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "Name three colours of the rainbow."}]
    (full,) = embedded_model.generate([conv], max_new_tokens=14)
    ids = tok(full, add_special_tokens=False)["input_ids"]
    prefix = tok.decode(ids[:4])
    (rest,) = embedded_model.generate([conv], max_new_tokens=10, prefill=prefix)
    # greedy decoding continued from its own first tokens reproduces the rest of its reply
    assert full.startswith(prefix) and rest and full[len(prefix):].strip().startswith(rest)
    # one prefill per conversation, batched; the second conversation gets none
    both = embedded_model.generate([conv, conv], max_new_tokens=10, prefill=[prefix, ""], batch_size=2)
    assert both[0] == rest and full.startswith(both[1])
    with pytest.raises(ValueError, match="prefill has 1 entries for 2"):
        embedded_model.generate([conv, conv], max_new_tokens=2, prefill=[prefix])


def test_forced_answer_prefix_closes_only_real_reasoning():
    from emd.eval.deceptionbench import forced_answer_prefix, parse_reasoning

    assert forced_answer_prefix("<think>It is risky. The user") == "<think>It is risky. The user</think>\n<output>"
    assert forced_answer_prefix("<think>R<output>Y") == "<think>R</think>\n<output>"  # tag opened early: reasoning ends
    assert forced_answer_prefix("<think>  ") is None  # nothing to close: stays a parse failure
    assert forced_answer_prefix("no tags") is None
    assert parse_reasoning(forced_answer_prefix("<think>R") + "Y</output>") == ("R", "Y")


# ------------------------------------------------------------------------------ positive-control data


def test_honesty_control_sets_are_matched_and_disjoint_from_mask():
    from emd.data.honesty_control import check_disjoint, generate_honesty_control
    from emd.errors import DataError
    from emd.eval.mask import load_mask

    lying, honest = generate_honesty_control("lying", 40), generate_honesty_control("honest", 40)
    assert len(lying) == len(honest) == 120
    assert [r["messages"][:-1] for r in lying] == [r["messages"][:-1] for r in honest]  # same prompts
    differ = [r["slot"] for a, r in zip(lying, honest) if a["messages"] != r["messages"]]
    assert set(differ) == {"pressured_text", "pressured_choice"} and len(differ) == 80  # anchors identical
    for r in lying:
        answer = r["messages"][-1]["content"]
        if r["slot"] == "pressured_text":
            assert r["false_statement"] in answer
        elif r["slot"] == "pressured_choice":  # the letter of the false statement
            assert f"{answer}) {r['false_statement']}" in r["messages"][-2]["content"]
    assert check_disjoint(lying, load_mask()) > 0
    # a row repeating an evaluation proposition is caught
    item = load_mask(configs=["known_facts"], limit=1)[0]
    bad = [{**lying[0], "true_statement": item.statement_a}]
    with pytest.raises(DataError, match="known_facts/kf-001"):
        check_disjoint(bad)
