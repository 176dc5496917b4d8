"""A fine-tune killed (SIGKILL) after a checkpoint resumes with --resume to the uninterrupted run's end.

Three real `python -m emd mixture` processes share one cache: an uninterrupted run, a run killed as
soon as its first checkpoint is complete, and a --resume run that finds that checkpoint by the
training's content key. Tolerance: the final step's loss within 1e-4 nats and the adapter weights
within 1e-4 (fp32 on the CPU; the resumed run restores optimizer, scheduler, RNG and data position)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parent.parent
TINY = ["mixture", "--ratio", "0.25", "--benchmarks", "none", "--register", "false", "--n-train", "8",
        "--batch-size", "2", "--max-steps", "4", "--max-length", "64", "--lora-r", "4", "--save-steps", "1"]
TOL = 1e-4


def _emd(tmp_path: Path, uri: str, *extra: str, log: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "MLFLOW_TRACKING_URI": uri, "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "emd", *TINY, *extra], cwd=tmp_path, env=env,
                            stdout=open(tmp_path / log, "w"), stderr=subprocess.STDOUT, start_new_session=True)


def _complete_checkpoints(cache: Path) -> list[Path]:
    return [p for p in (cache / "checkpoints").glob("*/checkpoint-*") if (p / "trainer_state.json").is_file()]


def _final(client: MlflowClient, run_id: str, tmp: Path) -> tuple[float, dict]:
    curve = client.get_metric_history(run_id, "train/loss")
    last = max(curve, key=lambda m: m.step)
    assert last.step == 4
    path = client.download_artifacts(run_id, "adapter/adapter_model.safetensors", str(tmp))
    return last.value, load_file(path)


@pytest.mark.slow
def test_killed_fine_tune_resumes_to_the_same_end(tmp_path, isolated_cache):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    full = _emd(tmp_path, uri, log="full.txt")
    assert full.wait(timeout=900) == 0, (tmp_path / "full.txt").read_text()[-3000:]
    assert not _complete_checkpoints(isolated_cache), "a finished training leaves no checkpoints behind"

    killed = _emd(tmp_path, uri, log="killed.txt")
    t0 = time.time()
    while not _complete_checkpoints(isolated_cache) and killed.poll() is None and time.time() - t0 < 900:
        time.sleep(0.1)
    os.killpg(killed.pid, signal.SIGKILL)
    killed.wait()
    ckpts = _complete_checkpoints(isolated_cache)
    assert ckpts and killed.returncode == -signal.SIGKILL, (tmp_path / "killed.txt").read_text()[-3000:]
    assert max(int(p.name.split("-")[1]) for p in ckpts) < 4, "the kill came after the last step"

    resumed = _emd(tmp_path, uri, "--resume", "true", log="resumed.txt")
    assert resumed.wait(timeout=900) == 0, (tmp_path / "resumed.txt").read_text()[-3000:]

    exp = client.get_experiment_by_name("emd-mixture")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time ASC"])
    assert [r.info.status for r in runs] == ["FINISHED", "FAILED", "FINISHED"]  # the killed one marked stale
    a, c = runs[0], runs[2]
    assert a.data.metrics["train/steps"] == c.data.metrics["train/steps"] == 4
    assert 1 <= c.data.metrics["train/resumed_from_step"] < 4 and "train/resumed_from_step" not in a.data.metrics
    loss_a, w_a = _final(client, a.info.run_id, tmp_path / "a")
    loss_c, w_c = _final(client, c.info.run_id, tmp_path / "c")
    print(f"final loss uninterrupted {loss_a:.6f} resumed {loss_c:.6f} diff {abs(loss_a - loss_c):.2e}")
    assert abs(loss_a - loss_c) <= TOL
    diff = max(float((w_a[k] - w_c[k]).abs().max()) for k in w_a)
    print(f"adapter max abs diff {diff:.2e}")
    assert set(w_a) == set(w_c) and diff <= TOL
    assert any(float(v.abs().max()) > 0 for k, v in w_c.items() if "lora_B" in k)  # it trained at all
