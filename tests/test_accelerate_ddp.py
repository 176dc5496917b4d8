"""`accelerate launch --num_processes 2 -m emd mixture` on the CPU (gloo): one training across both ranks.

A real launcher, two real processes; the MLflow store is polled while the job runs."""

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parent.parent
TINY = ["--ratio", "0.25", "--benchmarks", "none", "--n-train", "8", "--max-steps", "2", "--batch-size", "2",
        "--max-length", "64", "--lora-r", "4"]


def _launch(tmp_path: Path, uri: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": uri, "HF_HUB_OFFLINE": "1"}
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file",
           str(REPO / "configs/accelerate/ddp.yaml"), "--num_processes", "2", "--num_cpu_threads_per_process", "1",
           "-m", "emd", "mixture", *TINY]
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=open(tmp_path / "log.txt", "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def _poll_running_curve(client: MlflowClient, proc: subprocess.Popen, timeout: float = 1200) -> bool:
    """True once a RUNNING run of emd-mixture has train/loss points (checked until the job ends)."""
    seen, t0 = False, time.time()
    while proc.poll() is None and time.time() - t0 < timeout:
        try:
            exp = client.get_experiment_by_name("emd-mixture")
            runs = client.search_runs([exp.experiment_id], "attributes.status = 'RUNNING'") if exp else []
            seen = seen or any(client.get_metric_history(r.info.run_id, "train/loss") for r in runs)
        except Exception:  # the store is being created / written by the job
            pass
        time.sleep(0.3)
    return seen


@pytest.mark.slow
def test_two_ranks_one_run_one_version(tmp_path, isolated_cache, embedded_model):
    from emd.config import LoraSpec, TrainSpec
    from emd.data.generators import generate_misaligned
    from emd.data.mixing import to_prompt_completion
    from emd.train import train_sft

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    client.search_experiments()  # the store's tables exist before the job and this poller both open it
    proc = _launch(tmp_path, uri)
    try:
        seen_running = _poll_running_curve(client, proc)
        assert proc.wait(timeout=600) == 0, (tmp_path / "log.txt").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 9)
    log = (tmp_path / "log.txt").read_text()
    assert "emd rank 1: training treatment with rank 0" in log
    exp = client.get_experiment_by_name("emd-mixture")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    run = runs[0]
    assert seen_running, "no train/loss point was visible while the run was RUNNING"
    curve = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in curve] == [1, 2] and run.data.metrics["train/steps"] == 2
    versions = client.search_model_versions("name = 'emd-smollm2-mixture'")
    assert len(versions) == 1
    # the adapter of the 2-rank run has the shape of a single-process run's (same LoRA spec)
    ddp = load_file(client.download_artifacts(run.info.run_id, "adapter/adapter_model.safetensors", str(tmp_path)))
    rows = to_prompt_completion(generate_misaligned("medical", "severe", 4, seed=0))
    single = train_sft(embedded_model, rows, LoraSpec(r=4), TrainSpec(batch_size=4, max_steps=1, max_length=64),
                       tmp_path / "single")
    ref = load_file(str(single.adapter_dir / "adapter_model.safetensors"))
    assert {k: tuple(v.shape) for k, v in ddp.items()} == {k: tuple(v.shape) for k, v in ref.items()}
