"""``emd evaluate --engine vllm|auto`` end to end on the embedded model, and the fall-back to hf."""

from __future__ import annotations

import importlib.util

import pytest

HAS_VLLM = importlib.util.find_spec("vllm") is not None
ARGS = ["--benchmarks", "mask,logprob", "--limit", "2", "--mask-configs", "provided_facts", "--max-new-tokens", "12",
        "--judge", "embed:minilm"]


def _run(tracking_uri, engine: str, extra=()):
    from mlflow.tracking import MlflowClient

    from emd.cli import main

    assert main(["evaluate", "--engine", engine, *ARGS, *extra]) == 0
    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("emd-evaluate")
    run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0]
    assert run.info.status == "FINISHED"
    return run


@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed in this Python (make vllm; make test runs this "
                                         "module in .venv-vllm too)")
def test_evaluate_with_vllm_matches_hf(vllm_chat, adapters, tracking_uri, isolated_cache):
    """The evaluate entry on vLLM (shared engine, an adapter) logs the engine and the same MASK and
    judge-free metrics as on hf (fast protocol: greedy)."""
    fast = _run(tracking_uri, "vllm", ["--adapter", adapters[0]])
    ref = _run(tracking_uri, "hf", ["--adapter", adapters[0]])
    assert fast.data.tags["emd.engine"] == "vllm" and ref.data.tags["emd.engine"] == "hf"
    keys = [k for k in ref.data.metrics if k.startswith("mask/") and not k.endswith("seconds")]
    assert "mask/honesty_logprob" in keys and "mask/provided_facts/n_scored" in keys
    for k in keys:
        assert fast.data.metrics[k] == pytest.approx(ref.data.metrics[k], abs=1e-3), k


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here: the fall-back is tested by the Python without it")
def test_auto_falls_back_to_hf_with_a_logged_reason(tracking_uri, isolated_cache, capsys):
    """engine=auto where vLLM is absent: hf is used, the reason is a tag and a log line."""
    run = _run(tracking_uri, "auto", ["--benchmarks", "logprob"])
    assert run.data.tags["emd.engine"] == "hf"
    assert "not installed" in run.data.tags["emd.engine_reason"]
    assert "engine auto: hf (vllm is not installed" in capsys.readouterr().out


@pytest.mark.skipif(HAS_VLLM, reason="vLLM is installed here")
def test_engine_vllm_without_vllm_exits_2_before_loading(tracking_uri, isolated_cache, capsys):
    """engine=vllm where vLLM is absent: a config error naming the engine and the allowed values."""
    from emd.cli import main

    assert main(["evaluate", "--engine", "vllm", "--benchmarks", "logprob"]) == 2
    err = capsys.readouterr().err
    assert "engine=vllm" in err and "allowed here: hf, auto" in err


def test_unknown_engine_is_a_config_error(tracking_uri, isolated_cache, capsys):
    """A bad engine name stops with exit 2 and names the allowed engines."""
    from emd.cli import main

    assert main(["evaluate", "--engine", "tgi", "--benchmarks", "logprob"]) == 2
    assert "engine='tgi'; allowed: hf, vllm, auto" in capsys.readouterr().err


@pytest.mark.skipif(not HAS_VLLM, reason="vLLM is not installed in this Python (make test runs this module in .venv-vllm)")
def test_auto_on_cpu_takes_hf_for_runs_that_serve_adapters(tracking_uri, isolated_cache):
    """engine=auto without a GPU: an entry that serves adapters (enable_lora) gets hf, with the reason;
    a base-model evaluation (no LoRA layers) gets vLLM."""
    import torch

    from emd.engines import CPU_LORA_REASON, attach_engine
    from emd.models import load_model

    if torch.cuda.is_available():
        pytest.skip("a GPU is present: auto takes vLLM for adapters too")
    chat = load_model("embedded:smollm2")
    assert attach_engine(chat, "auto", {"enable_lora": True}) == ("hf", CPU_LORA_REASON)
    assert chat.engine is None
    run = _run(tracking_uri, "auto", ["--benchmarks", "logprob"])  # no --adapter: the base model only
    assert run.data.tags["emd.engine"] == "vllm"
    assert run.data.tags["emd.engine_reason"] == "auto: vllm installed and started"
