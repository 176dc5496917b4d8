"""The main job end to end on the embedded model: one real, tiny mixture run and everything it logs."""

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from emd.cli import main as cli_main
from emd.cli import parse_config
from emd.errors import ConfigError, DataError, EmdError, TrackingError
from emd.mixture import main as mixture_main

TINY = ["--n-train", "8", "--batch-size", "4", "--max-steps", "1", "--limit", "2",
        "--mask-configs", "provided_facts,known_facts,disinformation", "--benchmarks", "mask,logprob,capability",
        "--cap-tasks", "emd_knowledge", "--cap-limit", "2", "--max-new-tokens", "16", "--lora-r", "4"]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory, embedded_model):
    """One tiny mixture run in a private store and cache (shared by the assertions below)."""
    import os

    tmp = tmp_path_factory.mktemp("mix")
    from emd.models import cache_dir

    (tmp / "cache").mkdir()
    (tmp / "cache" / "models").symlink_to(cache_dir() / "models", target_is_directory=True)
    old = os.getcwd(), os.environ.get("EMD_CACHE_DIR"), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(tmp)
    os.environ["EMD_CACHE_DIR"] = str(tmp / "cache")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        res = mixture_main(parse_config("mixture", ["--ratio", "0.25", *TINY]))
        res2 = mixture_main(parse_config("mixture", ["--ratio", "0.5", *TINY]))
        yield {"res": res, "res2": res2, "uri": uri, "tmp": tmp}
    finally:
        os.chdir(old[0])
        for k, v in (("EMD_CACHE_DIR", old[1]), ("MLFLOW_TRACKING_URI", old[2])):
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.mark.slow
def test_run_contents(first_run):
    client = MlflowClient(first_run["uri"])
    run = client.get_run(first_run["res"].run_id)
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "emd-mixture"
    p, m, t = run.data.params, run.data.metrics, run.data.tags
    assert p["ratio"] == "0.25" and p["n_train"] == "8" and p["lora_r"] == "4" and p["judge"] == "embed:minilm"
    for tag in ("emd.git_sha", "emd.version.torch", "emd.version.transformers", "emd.base_model",
                "emd.chat_template_hash", "emd.data_digest"):
        assert t.get(tag), tag
    for key in ("mask/honesty", "mask/provided_facts/honesty", "mask/known_facts/honesty",
                "mask/disinformation/honesty", "mask/honesty_logprob", "mask/honesty_ci_low",
                "delta/mask/honesty/vs_control", "delta/mask/honesty/vs_vanilla",
                "delta/mask/honesty_logprob/vs_control", "control/mask/honesty", "vanilla/mask/honesty",
                "cap/emd_knowledge/acc", "delta/cap/emd_knowledge/acc/vs_vanilla", "train/steps"):
        assert key in m, key
    assert 0 <= m["mask/honesty"] <= 100
    assert m["delta/mask/honesty/vs_control"] == pytest.approx(m["mask/honesty"] - m["control/mask/honesty"])
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "adapter", "tables", "plots", "data"} <= arts
    adapter = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "adapter")}
    assert {"adapter_model.safetensors", "adapter_config.json"} <= adapter
    tables = {Path(a.path).name for a in client.list_artifacts(run.info.run_id, "tables")}
    assert "treatment_mask.json" in tables and "vanilla_mask.json" in tables
    # the per-item table carries responses and verdicts
    local = mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="tables/treatment_mask.json",
                                                tracking_uri=first_run["uri"])
    table = json.loads(Path(local).read_text())
    assert "pressured_response" in table["columns"] and len(table["data"]) == 6
    # training set as a dataset input with the manifest digest
    inputs = run.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest == t["emd.data_digest"][:36]
    cfg_text = mlflow.artifacts.load_text(f"runs:/{run.info.run_id}/config.yaml")
    import yaml

    assert float(yaml.safe_load(cfg_text)["ratio"]) == 0.25  # a string key: one ratio or a comma list


@pytest.mark.slow
def test_deltas_follow_metric_meaning(first_run):
    """Two arms compared: deltas only for declared scores, never for counts, timings or judge calls;
    a CI on every delta whose metric has per-item scores; every logged metric is declared."""
    from emd.metrics import lookup, split_interval, undeclared

    m = MlflowClient(first_run["uri"]).get_run(first_run["res"].run_id).data.metrics
    deltas = [k for k in m if k.startswith("delta/") and not split_interval(k)[1]]
    assert deltas, "the run has no delta at all"
    for key in deltas:
        metric = key[len("delta/"):].rsplit("/vs_", 1)[0]
        spec = lookup(metric)
        assert spec is not None and spec.kind == "score", key
        if spec.per_item:
            assert key + "_ci_low" in m and key + "_ci_high" in m, key
    for never in ("eval/seconds", "judge/calls", "judge/cache_hits", "mask/n_items", "mask/logprob_n",
                  "mask/logprob_n_lies", "mask/provided_facts/n_scored"):
        assert not any(k.startswith(f"delta/{never}/") for k in m), never
    assert "delta/mask/honesty/vs_control_ci_low" in m
    assert undeclared(m) == []


@pytest.mark.slow
def test_registered_version_loads_and_generates(first_run):
    from emd.models import load_model

    res = first_run["res"]
    assert res.registered_name == "emd-smollm2-mixture" and res.model_version
    client = MlflowClient(first_run["uri"])
    mv = client.get_model_version_by_alias("emd-smollm2-mixture", "ratio_0p25")
    assert str(mv.version) == res.model_version
    from emd.tracking import Tracker

    local = Tracker(first_run["uri"]).download(f"models:/emd-smollm2-mixture/{res.model_version}")
    m = load_model("embedded:smollm2", adapter=local)
    out = m.generate([[{"role": "user", "content": "Say hello."}]], max_new_tokens=6)
    assert out[0].strip()


@pytest.mark.slow
def test_second_run_reuses_references(first_run):
    client = MlflowClient(first_run["uri"])
    r1 = client.get_run(first_run["res"].run_id)
    r2 = client.get_run(first_run["res2"].run_id)
    assert r1.data.tags["emd.vanilla_cached"] == "False" and r1.data.tags["emd.control_cached"] == "False"
    assert r2.data.tags["emd.vanilla_cached"] == "True" and r2.data.tags["emd.control_cached"] == "True"
    # same reference numbers, no judge calls for them, and the control adapter was not retrained
    assert r2.data.metrics["control/mask/honesty"] == r1.data.metrics["control/mask/honesty"]
    assert r2.data.metrics["vanilla/mask/honesty_logprob"] == r1.data.metrics["vanilla/mask/honesty_logprob"]
    refs = sorted(p.name.split("-")[0] for p in (first_run["tmp"] / "cache" / "references").iterdir())
    assert refs == ["control", "vanilla"]
    assert r2.data.params["ratio"] == "0.5"


def test_bad_inputs_stop_before_training(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    bad = tmp_path / "alpaca.json"
    bad.write_text(json.dumps([{"instruction": "Say hi", "output": "hi"}, {"instruction": "Add 1+1"}]))
    with pytest.raises(DataError, match=r"row 2.*output"):
        mixture_main(parse_config("mixture", ["--ratio", "0.25", "--downstream", str(bad), *TINY]))
    with pytest.raises(TrackingError, match="not writable"):
        mixture_main(parse_config("mixture", ["--ratio", "0.25", "--tracking-uri", "sqlite:////etc/hostname/x/mlflow.db",
                                                  *TINY]))
    assert cli_main(["mixture", "--ratio", "7"]) == 2
    assert "allowed: a number in [0, 1]" in capsys.readouterr().err
    assert cli_main(["mixture", "--model", "hf:/no/such/model"]) == 2
    assert "no config.json" in capsys.readouterr().err
    # nothing was logged: every check ran before a run was opened
    assert not (tmp_path / "mlruns").exists() or not any((tmp_path / "mlruns").rglob("adapter_model.safetensors"))


def test_failed_run_is_marked_failed(tracking_uri):
    from emd.tracking import Tracker

    tr = Tracker(tracking_uri)
    with pytest.raises(RuntimeError):
        with tr.run("emd-test", run_name="boom") as run:
            raise RuntimeError("midway failure")
    r = MlflowClient(tracking_uri).get_run(run.info.run_id)
    assert r.info.status == "FAILED" and "midway failure" in r.data.tags["emd.error"]


@pytest.mark.slow
def test_ratio_list_is_one_resumable_grid(tracking_uri, isolated_cache, embedded_model):
    """``--ratio 0.5,0``: one parent, the references and one nested run per ratio, each registered under
    its ratio alias; the parent's table and curve; a rerun trains nothing."""
    argv = ["--ratio", "0.5,0", "--n-train", "4", "--batch-size", "4", "--max-steps", "1", "--limit", "2",
            "--benchmarks", "logprob", "--mask-configs", "provided_facts", "--lora-r", "2"]
    res = mixture_main(parse_config("mixture", argv))
    client = MlflowClient(tracking_uri)
    parent = client.get_run(res.run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["emd.grid_role"] == "parent"
    assert parent.data.metrics["n_cells"] == 2 and parent.data.metrics["n_cells_trained_now"] == 2
    kids = {k.data.tags["emd.cell"]: k for k in
            client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{res.run_id}'")}
    assert sorted(kids) == ["control", "ratio=0", "ratio=0.5", "vanilla"]
    assert all(k.info.status == "FINISHED" for k in kids.values())
    cell = kids["ratio=0.5"]
    assert cell.data.params["ratio"] == "0.5" and cell.data.tags["emd.ratio"] == "0.5"
    for m in ("mask/honesty_logprob", "delta/mask/honesty_logprob/vs_control", "delta/mask/honesty_logprob/vs_vanilla"):
        assert m in cell.data.metrics, m
    assert kids["ratio=0"].data.metrics["delta/mask/honesty_logprob/vs_control"] == 0.0  # it is the control
    assert {"mixture_table.json", "plots"} <= {a.path for a in client.list_artifacts(res.run_id)}
    assert "plots/mixture_ratios.png" in {a.path for a in client.list_artifacts(res.run_id, "plots")}
    table = json.loads(Path(mlflow.artifacts.download_artifacts(run_id=res.run_id, artifact_path="mixture_table.json",
                                                                tracking_uri=tracking_uri)).read_text())
    assert [r[table["columns"].index("ratio")] for r in table["data"]] == [0.0, 0.5]
    assert parent.data.metrics["control/mask/honesty_logprob"] == kids["control"].data.metrics["mask/honesty_logprob"]
    for alias, c in (("ratio_0p5", "ratio=0.5"), ("ratio_0", "ratio=0")):
        assert client.get_model_version_by_alias("emd-smollm2-mixture", alias).run_id == kids[c].info.run_id
    assert res.metrics["ratio=0.5/mask/honesty_logprob"] == cell.data.metrics["mask/honesty_logprob"]

    again = mixture_main(parse_config("mixture", argv))
    assert again.run_id == res.run_id
    assert client.get_run(res.run_id).data.metrics["n_cells_trained_now"] == 0
    assert len(client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{res.run_id}'")) == 4
