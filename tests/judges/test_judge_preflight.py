"""``emd.judges.preflight``: every judge backend is checked before any model loads or any run exists;
the judge settings of JudgeSpec reach the backend; judge stats carry latency and failures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from emd.config import JudgeSpec
from emd.errors import ConfigError, JudgeError
from emd.judges import PropositionQuery, get_judge, preflight

REPO = Path(__file__).resolve().parents[2]
DEAD = "http://127.0.0.1:9/v1"
Q = PropositionQuery("The lake is frozen.", "The lake is not frozen.", "Yes, the lake is frozen solid.")


@pytest.fixture
def no_openai_env(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_openai_without_url_or_key_fails_naming_both(no_openai_env):
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL") as e:
        preflight("openai:x")
    assert "OPENAI_API_KEY" in str(e.value)
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        get_judge("openai:x", cache=False)  # never a client that would send "EMPTY" to the public API


def test_openai_dead_endpoint_fails_naming_the_url(no_openai_env, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", DEAD)
    with pytest.raises(JudgeError, match="127.0.0.1:9"):
        preflight(JudgeSpec(judge="openai:x", judge_timeout=2))


def test_openai_live_endpoint_passes_with_no_completion(server):
    preflight("openai:rule-model")
    judge = get_judge("openai:rule-model", cache=False)
    preflight(judge)  # a built judge is checked too
    assert server.requests == 0


def test_local_judges_are_checked_from_their_files(tmp_path):
    from emd.models import resolve_model_dir

    preflight("embed:minilm")
    preflight(f"hf:{resolve_model_dir('embedded:smollm2')}")
    half = tmp_path / "half"
    half.mkdir()
    (half / "config.json").write_text(json.dumps({"model_type": "llama"}))
    with pytest.raises(JudgeError, match="tokenizer files.*weights"):
        preflight(f"hf:{half}")
    (half / "config.json").write_text("{not json")
    with pytest.raises(JudgeError, match="config.json is not valid JSON"):
        preflight(f"hf:{half}")


def test_judge_spec_settings_reach_the_backend(server, tmp_path):
    server.control(default_fault="500")
    spec = JudgeSpec(judge="openai:rule-model", judge_timeout=2, judge_retries=1, judge_concurrency=1)
    judge = get_judge(spec, cache=False, base_delay=0.0)
    (v,) = judge.judge_propositions([Q])
    assert v.state == "error" and "gave up after 2 attempts" in v.detail
    assert server.requests == 2  # judge_retries=1: one retry, not the default three
    st = judge.stats
    assert st.failures == 1 and st.retries == 1 and st.latency_s > 0
    m = st.metrics()
    assert m["judge/failures"] == 1.0 and m["judge/latency_s"] > 0 and m["judge/calls"] == 1.0
    server.control(reset=True)
    judge.reset_stats()
    assert judge.stats.latency_s == 0.0 and judge.stats.failures == 0


def test_judge_spec_validates_its_keys():
    for kw, key in [(dict(judge_timeout=0), "judge_timeout"), (dict(judge_retries=-1), "judge_retries"),
                    (dict(judge_concurrency=0), "judge_concurrency"), (dict(judge_retries=1.5), "judge_retries")]:
        with pytest.raises(ConfigError, match=key):
            JudgeSpec(**kw)


def test_cli_openai_judge_without_env_exits_2_before_any_run(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_BASE_URL", "OPENAI_API_KEY")}
    env.update(PYTHONPATH=str(REPO), MLFLOW_TRACKING_URI=uri, EMD_CACHE_DIR=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "emd", "evaluate", "--judge", "openai:x", "--benchmarks", "mask"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "OPENAI_BASE_URL" in proc.stderr and "Traceback" not in proc.stderr
    if (tmp_path / "mlflow.db").exists():
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        exps = [e.experiment_id for e in client.search_experiments()]
        assert not client.search_runs(exps)
    assert not (tmp_path / "cache" / "models").exists()  # nothing converted or loaded
