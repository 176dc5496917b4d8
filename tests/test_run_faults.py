"""Runs that cannot measure what they were asked to do not end FINISHED, and a killed run is cleaned up
by the next one: empty benchmark sources, stale RUNNING runs and work folders of dead processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id])


def test_empty_deceptionbench_file_is_an_error_before_any_run(tmp_path, tracking_uri, isolated_cache, capsys):
    from emd.cli import main

    empty = tmp_path / "db.json"
    empty.write_text("[]")
    rc = main(["evaluate", "--benchmarks", "deceptionbench", "--deceptionbench-source", str(empty)])
    assert rc == 2
    err = capsys.readouterr().err
    assert str(empty) in err or "db.json" in err
    assert _runs(tracking_uri, "emd-evaluate") == []


def test_empty_mask_selection_is_an_error_before_any_run(tmp_path, tracking_uri, isolated_cache, capsys):
    from emd.cli import main

    folder = tmp_path / "mask"
    folder.mkdir()
    header = (REPO / "evaluation" / "mask" / "provided_facts.csv").read_text().splitlines()[0]
    (folder / "provided_facts.csv").write_text(header + "\n")
    rc = main(["evaluate", "--benchmarks", "logprob", "--mask-source", str(folder), "--mask-configs", "provided_facts"])
    assert rc == 2
    assert str(folder) in capsys.readouterr().err
    assert _runs(tracking_uri, "emd-evaluate") == []


def test_dead_work_folders_are_removed_live_ones_kept(tmp_path):
    from emd.pipeline import WORK_PREFIX, workdir

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f"{WORK_PREFIX}{dead.pid}-abc"
    live = tmp_path / f"{WORK_PREFIX}{os.getpid()}-def"
    stale.mkdir()
    live.mkdir()
    (stale / "adapter.bin").write_text("x")
    new = workdir(tmp_path)
    assert not stale.exists() and live.exists() and new.exists()


@pytest.mark.slow
def test_killed_run_is_marked_failed_by_the_next_run(tmp_path, tracking_uri, isolated_cache):
    """SIGKILL an evaluation mid-run: it stays RUNNING; the next run of the entry marks it FAILED with a
    reason and removes its work folder; the next run itself finishes."""
    from mlflow.tracking import MlflowClient

    from emd.cli import main

    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path)}
    args = ["--benchmarks", "logprob", "--limit", "2", "--mask-configs", "provided_facts"]
    _runs(tracking_uri, "emd-evaluate")  # create the store first: two processes migrating one sqlite file race
    err = open(tmp_path / "killed.err", "w")
    proc = subprocess.Popen([sys.executable, "-m", "emd", "evaluate", *args], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not [r for r in _runs(tracking_uri, "emd-evaluate")
                                               if r.info.status == "RUNNING"]:
            assert proc.poll() is None, ("the evaluation ended before it could be killed: "
                                         + (tmp_path / "killed.err").read_text()[-2000:])
            time.sleep(0.5)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    (killed,) = _runs(tracking_uri, "emd-evaluate")
    assert killed.info.status == "RUNNING"
    assert list(tmp_path.glob(f"emd-work-{proc.pid}-*")), "the killed run had no work folder"
    from emd.pipeline import workdir

    workdir(tmp_path)  # what the next run does first (it uses the system temp dir, the killed one ours)
    assert not list(tmp_path.glob(f"emd-work-{proc.pid}-*"))
    assert main(["evaluate", *args]) == 0
    client = MlflowClient(tracking_uri)
    old = client.get_run(killed.info.run_id)
    assert old.info.status == "FAILED"
    assert f"process {proc.pid}" in old.data.tags["emd.failure_reason"]
    statuses = sorted(r.info.status for r in _runs(tracking_uri, "emd-evaluate"))
    assert statuses == ["FAILED", "FINISHED"]


@pytest.mark.slow
def test_total_judge_outage_fails_the_run_but_keeps_its_metrics(server, tracking_uri, isolated_cache, capsys):
    """Every judge call fails (HTTP 500 after retries): exit 3, the run FAILED and tagged, the judge
    failures counted in its metrics, nothing cached as a reference."""
    from mlflow.tracking import MlflowClient

    from emd.cli import main

    server.control(default_fault="500")
    rc = main(["evaluate", "--judge", "openai:test-judge", "--judge-retries", "0", "--benchmarks", "mask",
               "--limit", "1", "--mask-configs", "provided_facts", "--max-new-tokens", "8", "--judge-validation",
               "false"])
    assert rc == 3
    err = capsys.readouterr().err
    assert "judge verdicts failed" in err and "max_judge_failure_rate" in err
    (run,) = _runs(tracking_uri, "emd-evaluate")
    assert run.info.status == "FAILED"
    assert "judge verdicts failed" in run.data.tags["emd.judge_failures"]
    assert run.data.metrics["mask/n_judge_failures"] >= 1
    assert MlflowClient(tracking_uri).list_artifacts(run.info.run_id, "tables")
