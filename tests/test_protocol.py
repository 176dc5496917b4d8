"""Protocol profiles: ``--print-config`` shows what a profile resolves to, and a ``--protocol mask``
evaluation feeds a real local judge server exactly what the upstream MASK judge sees."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
MASK_PROMPTS = REPO / "evaluation" / "judge_prompts" / "mask"


def test_print_config_shows_the_resolved_profile(capsys, tmp_path, monkeypatch):
    from emd.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--print-config"]) == 0
    fast = yaml.safe_load(capsys.readouterr().out)
    assert fast["protocol"] == "fast" and fast["max_new_tokens"] == 48 and fast["mask_temperature"] == 0.0
    assert main(["mixture", "--model", "hf:/some/llama", "--print-config", "--max-new-tokens", "300"]) == 0
    mask = yaml.safe_load(capsys.readouterr().out)
    assert mask["protocol"] == "mask" and mask["max_new_tokens"] == 300  # a value the user gives wins
    assert mask["belief_temperature"] == 1.0 and mask["judge_max_tokens"] == 1000
    assert mask["mask_configs"] == "provided_facts,disinformation,statistics"
    assert mask["deceptionbench_prefill"] is False
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlruns").exists()  # nothing ran
    assert main(["evaluate", "--protocol", "upstream"]) == 2
    assert "allowed: auto, mask, fast" in capsys.readouterr().err


def _template_head(name: str) -> str:
    """A stretch of a template's own wording (before its first placeholder) that identifies it."""
    user = yaml.safe_load((MASK_PROMPTS / f"{name}.yaml").read_text())["user"]
    return user.split("{{")[0].strip().splitlines()[0][:60]


def _text(entry: dict) -> str:
    return "\n".join(m.get("content", "") for m in entry["messages"])


@pytest.mark.slow
def test_mask_protocol_feeds_the_judge_what_upstream_does(server, tmp_path, tracking_uri, isolated_cache):
    import mlflow
    from mlflow.tracking import MlflowClient

    from emd.cli import main
    from emd.eval.mask import MASK_CONFIGS, load_mask
    from emd.judges.parsing import parse_final_choice

    folder = tmp_path / "MASK"
    shutil.copytree(REPO / "evaluation" / "mask", folder)
    rc = main(["evaluate", "--protocol", "mask", "--judge", "openai:test-judge", "--judge-retries", "0",
               "--benchmarks", "mask", "--mask-source", str(folder), "--mask-configs", "all", "--limit", "1",
               "--max-new-tokens", "24", "--judge-validation", "false", "--seed", "7"])
    assert rc == 0
    client = MlflowClient(tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("emd-evaluate").experiment_id])
    assert run.info.status == "FINISHED"
    p = run.data.params
    assert (p["protocol"], p["seed"], p["mask_temperature"], p["belief_temperature"]) == ("mask", "7", "1.0", "1.0")
    assert "max_new_tokens=24" in run.data.tags["emd.protocol_deviations"]

    log = server.log()
    assert log and all(e["max_tokens"] == 1000 for e in log)  # room to reason before the final answer
    items = {it.config: it for it in load_mask(str(folder), configs=list(MASK_CONFIGS), limit=1)}
    texts = [_text(e) for e in log]
    pressured = _template_head("pressured")
    for config, it in items.items():
        mine = [t for t in texts if it.system_prompt in t and it.user_prompt in t]
        assert mine, f"{config}: no judge request showed the row's system prompt and user prompt"
    dd = items["doubling_down_known_facts"]
    assert any(dd.dd_turn_1_prompt in t and dd.dd_turn_1_response in t and _template_head("doubling_down") in t
               for t in texts), "the doubling-down turn never reached the judge"
    rules = yaml.safe_load((MASK_PROMPTS / "pressured.yaml").read_text())["rules"]
    for config in ("disinformation", "continuations"):
        rule = rules[config].strip().splitlines()[0]
        it = items[config]
        assert any(rule in t and it.system_prompt in t and pressured in t for t in texts), config
        assert not any(rule in t and items["known_facts"].system_prompt in t for t in texts)
    kf = items["known_facts"]
    assert any(_template_head("belief_direct") in t and kf.belief_elicit_1 in t for t in texts)
    assert any(_template_head("belief_consistency") in t and kf.belief_elicit_rest[0] in t for t in texts)

    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="tables/base_mask.json",
                                                tracking_uri=tracking_uri)
    table = json.loads(Path(local).read_text())
    rows = [dict(zip(table["columns"], r)) for r in table["data"]]
    assert len(rows) == len(MASK_CONFIGS)
    checked = 0
    for row in rows:
        it = items[row["config"]]
        if not it.is_binary or row["pressured_state"] != "scored":
            continue
        head = _template_head("doubling_down" if it.dd_turn_1_prompt else "pressured")
        reply = next(e["reply"] for e in log if head in _text(e) and it.system_prompt in _text(e)
                     and row["pressured_response"].strip() in _text(e))
        assert "Answer: D" in reply  # the decoy before the final line
        final = parse_final_choice(reply, ("A", "B", "C", "D"))
        assert row["pressured_verdict"] == final
        checked += final != "D"  # the decoy and the final answer differ: the last one was read
    assert checked >= 3
    samples = [json.loads(r["belief_responses"])[:3] for r in rows if items[r["config"]].belief_elicit_1]
    assert any(len(set(s)) == 3 for s in samples), "belief_elicit_1 was not sampled three times independently"
