"""Grid workers on real shared services: a private PostgreSQL cluster, a real ``mlflow server`` on it,
and ``emd direct`` worker processes on the embedded model joining one grid through ``--storage``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from services import mlflow_server, postgres_cluster

REPO = Path(__file__).resolve().parent.parent
TINY = ["--n-train", "4", "--batch-size", "4", "--max-steps", "1", "--limit", "2", "--benchmarks", "logprob",
        "--mask-configs", "provided_facts", "--lora-r", "2", "--register", "false"]
GRID = ["--domain", "medical", "--level", "subtle,severe"]
BEATS = ["--grid-heartbeat-s", "2", "--grid-stale-after-s", "20"]


@pytest.fixture(scope="module")
def services(tmp_path_factory):
    """(PostgreSQL cluster, tracking server URL) shared by this module's tests."""
    root = tmp_path_factory.mktemp("services")
    with postgres_cluster() as pg:
        with mlflow_server(pg.url("mlflow"), root / "artifacts") as uri:
            yield pg, uri


def fresh_cache(root: Path) -> Path:
    """An empty EMD_CACHE_DIR whose models/ is the real converted model cache."""
    from emd.storage import cache_dir

    models = Path(os.environ.get("EMD_CACHE_DIR") or "~/.cache/emd").expanduser() / "models"
    if not models.exists():
        models = cache_dir("models")
    root.mkdir(parents=True)
    (root / "models").symlink_to(models, target_is_directory=True)
    return root


def start(args: list[str], cache: Path, log: Path) -> subprocess.Popen:
    """``python -m emd <args>`` as its own process, output to ``log``."""
    env = {**os.environ, "EMD_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.Popen([sys.executable, "-m", "emd", *args], stdout=open(log, "w"), stderr=subprocess.STDOUT,
                            env=env, cwd=log.parent)


def wait_all(procs, logs, timeout=1800) -> None:
    deadline = time.time() + timeout
    for p, log in zip(procs, logs):
        try:
            p.wait(timeout=max(1, deadline - time.time()))
        except subprocess.TimeoutExpired:
            p.kill()
            raise AssertionError(f"worker {p.pid} did not finish; its log:\n{log.read_text()[-3000:]}")


def run_workers(args: list[str], tmp_path: Path, n: int = 2) -> list[str]:
    """``n`` worker processes of ``python -m emd <args>``, each with a fresh cache; all must exit 0.
    Returns their logs."""
    logs = [tmp_path / f"worker{i}.log" for i in range(n)]
    procs = [start(args, fresh_cache(tmp_path / f"cache{i}"), logs[i]) for i in range(n)]
    wait_all(procs, logs)
    out = [log.read_text() for log in logs]
    assert [p.returncode for p in procs] == [0] * n, "\n".join(o[-2000:] for o in out)
    return out


def trials_by_cell(url: str) -> dict[str, list]:
    """cell -> its trials (state name, worker, fail reason) in the grid's study (there is one)."""
    import optuna

    (summary,) = optuna.get_all_study_summaries(url)
    out: dict[str, list] = {}
    for t in optuna.load_study(study_name=summary.study_name, storage=url).get_trials(deepcopy=False):
        out.setdefault(t.user_attrs["emd.cell"], []).append((t.state.name, t.user_attrs.get("emd.worker"),
                                                              t.user_attrs.get("emd.fail_reason")))
    return out


def nested(client, exp: str):
    """(parent run, {cell: [status, ...]}) of the one grid parent in ``exp``."""
    e = client.get_experiment_by_name(exp)
    parents = client.search_runs([e.experiment_id], "tags.`emd.grid_role` = 'parent'")
    assert len(parents) == 1
    kids: dict[str, list] = {}
    for k in client.search_runs([e.experiment_id], f"tags.mlflow.parentRunId = '{parents[0].info.run_id}'"):
        kids.setdefault(k.data.tags["emd.cell"], []).append(k.info.status)
    return parents[0], kids


def reference_runs(client) -> list:
    e = client.get_experiment_by_name("emd-references")
    return [] if e is None else client.search_runs([e.experiment_id], "tags.`emd.ref_kind` = 'vanilla'")


@pytest.mark.slow
def test_two_workers_split_the_grid_and_share_the_reference(services, tmp_path, embedded_model):
    from mlflow.tracking import MlflowClient

    pg, uri = services
    url = pg.url("grid_split")
    args = ["direct", *GRID, *TINY, *BEATS, "--storage", url, "--tracking-uri", uri, "--experiment", "grid-split"]
    run_workers(args, tmp_path)

    trials = trials_by_cell(url)
    assert sorted(trials) == ["collect", "medical/severe", "medical/subtle", "vanilla"]
    for cell, ts in trials.items():  # every cell, the reference and the collection ran exactly once
        assert [s for s, _, _ in ts] == ["COMPLETE"], (cell, ts)
    assert len({w for ts in trials.values() for _, w, _ in ts}) == 2  # both workers did work

    client = MlflowClient(uri)
    parent, kids = nested(client, "grid-split")
    assert kids == {"vanilla": ["FINISHED"], "medical/subtle": ["FINISHED"], "medical/severe": ["FINISHED"]}
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_cells"] == 2
    assert "direct_table.json" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    table = json.loads(Path(client.download_artifacts(parent.info.run_id, "direct_table.json", str(tmp_path))).read_text())
    rows = [dict(zip(table["columns"], r)) for r in table["data"]]
    assert sorted(r["level"] for r in rows) == ["severe", "subtle"]
    assert all(isinstance(v, float) and v == v for v in (r["delta/mask/honesty_logprob/vs_vanilla"] for r in rows))
    assert len(reference_runs(client)) == 1  # the vanilla reference was computed (and published) once

    # A second machine: a fresh EMD_CACHE_DIR reuses the reference from the tracking server.
    log = tmp_path / "second.log"
    p = start(["direct", "--domain", "medical", "--level", "subtle", *TINY, "--tracking-uri", uri,
               "--experiment", "grid-second"], fresh_cache(tmp_path / "cache-second"), log)
    wait_all([p], [log])
    out = log.read_text()
    assert p.returncode == 0, out[-3000:]
    assert "vanilla: reusing shared (fetched from the tracking server) reference" in out
    assert "vanilla: judge-free" not in out  # not evaluated again
    assert len(reference_runs(client)) == 1


@pytest.mark.slow
def test_killed_worker_cell_is_rerun_by_the_other(services, tmp_path, embedded_model):
    from mlflow.tracking import MlflowClient

    pg, uri = services
    url = pg.url("grid_kill")
    args = ["direct", *GRID, *TINY, *BEATS, "--storage", url, "--tracking-uri", uri, "--experiment", "grid-kill"]
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    procs = [start(args, fresh_cache(tmp_path / f"cache{i}"), logs[i]) for i in range(2)]
    victim = None
    deadline = time.time() + 900
    while victim is None and time.time() < deadline:  # the first worker seen training a cell is killed
        for p, log in zip(procs, logs):
            if "emd phase: train medical_" in log.read_text():
                victim = p
                break
        assert all(p.poll() is None for p in procs), "a worker ended before any cell trained"
        time.sleep(0.5)
    assert victim is not None, "no worker started training a cell"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait()
    survivor = [(p, log) for p, log in zip(procs, logs) if p is not victim]
    wait_all([p for p, _ in survivor], [log for _, log in survivor])
    assert survivor[0][0].returncode == 0, survivor[0][1].read_text()[-3000:]

    trials = trials_by_cell(url)
    finished = {c: sum(s == "COMPLETE" for s, _, _ in ts) for c, ts in trials.items()}
    assert finished == {"vanilla": 1, "medical/subtle": 1, "medical/severe": 1, "collect": 1}  # no duplicates
    stale = [(c, w) for c, ts in trials.items() for s, w, why in ts if s == "FAIL"]
    assert len(stale) == 1 and stale[0][1].endswith(f":{victim.pid}")  # the killed worker's cell, rerun
    assert "lost its process" in survivor[0][1].read_text()

    client = MlflowClient(uri)
    parent, kids = nested(client, "grid-kill")
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_cells"] == 2
    assert {c: s.count("FINISHED") for c, s in kids.items()} == {"vanilla": 1, "medical/subtle": 1,
                                                                 "medical/severe": 1}
    killed_cell = stale[0][0]
    assert sorted(kids[killed_cell]) == ["FAILED", "FINISHED"]


@pytest.mark.slow
def test_mixture_ratios_fan_out_with_the_control_trained_once(services, tmp_path, embedded_model):
    """``emd mixture --ratio 0,0.5 --storage``: two workers, references vanilla and control computed once,
    the ratio-0 cell reusing the control's adapter (from the tracking server where its worker did not
    train it), the parent's table and curve."""
    from mlflow.tracking import MlflowClient

    pg, uri = services
    url = pg.url("grid_mixture")
    args = ["mixture", "--ratio", "0,0.5", *TINY, *BEATS, "--storage", url, "--tracking-uri", uri,
            "--experiment", "grid-mixture"]
    out = run_workers(args, tmp_path)

    trials = trials_by_cell(url)
    assert sorted(trials) == ["collect", "control", "ratio=0", "ratio=0.5", "vanilla"]
    assert all([s for s, _, _ in ts] == ["COMPLETE"] for ts in trials.values()), trials
    assert sum(o.count("control: training on clean data only") for o in out) == 1  # one control training

    client = MlflowClient(uri)
    parent, kids = nested(client, "grid-mixture")
    assert kids == {c: ["FINISHED"] for c in ("vanilla", "control", "ratio=0", "ratio=0.5")}
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_cells"] == 2
    arts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert "mixture_table.json" in arts
    assert "plots/mixture_ratios.png" in {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    table = json.loads(Path(client.download_artifacts(parent.info.run_id, "mixture_table.json", str(tmp_path))).read_text())
    rows = {r[table["columns"].index("ratio")]: dict(zip(table["columns"], r)) for r in table["data"]}
    assert sorted(rows) == [0.0, 0.5]
    assert rows[0.0]["delta/mask/honesty_logprob/vs_control"] == 0.0  # ratio 0 is the control itself
    assert rows[0.5]["mask/honesty_logprob"] == rows[0.5]["mask/honesty_logprob"]  # measured, not NaN
    e = client.get_experiment_by_name("grid-mixture")
    for k in client.search_runs([e.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'"):
        if k.data.tags["emd.cell"].startswith("ratio="):
            assert {"adapter"} <= {a.path for a in client.list_artifacts(k.info.run_id)}
            assert k.data.params["ratio"] in ("0.0", "0.5")


@pytest.mark.slow
def test_interaction_grid_workers_wait_for_the_control_cell(services, tmp_path, embedded_model):
    """``emd interaction --biased-ratio 0,1 --storage``: the ratio-1 cell reads the ratio-0 cell's round
    arms (its control) across processes; every unit once; the parent's grid table, plots and curves."""
    from mlflow.tracking import MlflowClient

    pg, uri = services
    url = pg.url("grid_interaction")
    args = ["interaction", "--biased-ratio", "0,1", "--method", "sft", "--rounds", "1", "--n-conversations", "4",
            "--turns", "1", "--top-k", "2", "--bottom-k", "1", "--reply-tokens", "8", "--benchmarks", "logprob",
            "--limit", "1", "--max-steps", "1", "--batch-size", "4", "--mask-configs", "provided_facts",
            "--register", "false", *BEATS, "--storage", url, "--tracking-uri", uri, "--experiment", "grid-interaction"]
    run_workers(args, tmp_path)

    trials = trials_by_cell(url)
    assert sorted(trials) == ["collect", "ratio=0 sft", "ratio=1 sft", "vanilla"]
    for cell, ts in trials.items():
        assert [s for s, _, _ in ts if s == "COMPLETE"] == ["COMPLETE"], (cell, ts)

    client = MlflowClient(uri)
    parent, kids = nested(client, "grid-interaction")
    assert kids == {c: ["FINISHED"] for c in ("vanilla", "ratio=0 sft", "ratio=1 sft")}
    assert parent.info.status == "FINISHED" and parent.data.metrics["n_cells"] == 2
    assert "vanilla/probe/validation_rate" in parent.data.metrics
    assert "sft/ratio_1/mask/honesty_logprob" in parent.data.metrics
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/grid.png", "plots/rounds.png"} <= plots
    grid = json.loads(Path(client.download_artifacts(parent.info.run_id, "tables/grid.json", str(tmp_path))).read_text())
    assert sorted(r[grid["columns"].index("biased_ratio")] for r in grid["data"]) == [0.0, 1.0]
    e = client.get_experiment_by_name("grid-interaction")
    (round1,) = client.search_runs([e.experiment_id], "tags.`emd.level` = 'round' and tags.`emd.biased_ratio` = '1.0'")
    assert "delta/mask/honesty_logprob/vs_control" in round1.data.metrics  # compared with the ratio-0 cell


def test_storage_and_heartbeat_keys_are_validated_and_leave_the_grid_key_alone():
    from emd.cli import parse_config
    from emd.direct import grid_key
    from emd.errors import ConfigError

    with pytest.raises(ConfigError, match="allowed: an Optuna RDB URL"):
        parse_config("direct", ["--storage", "redis://db/0"])
    with pytest.raises(ConfigError, match="PGPASSWORD"):
        parse_config("direct", ["--storage", "postgresql://emd:secret@db/optuna"])
    with pytest.raises(ConfigError, match="more than twice grid_heartbeat_s"):
        parse_config("direct", ["--grid-heartbeat-s", "10", "--grid-stale-after-s", "15"])
    plain = parse_config("direct", GRID)
    worker = parse_config("direct", [*GRID, "--storage", "postgresql://emd@db/optuna", *BEATS])
    assert grid_key(plain) == grid_key(worker)  # the same grid, run by one process or by workers


def test_collect_names_a_missing_grid(tracking_uri):
    from emd.cli import main

    assert main(["collect", "--experiment", "emd-direct"]) == 2  # no grid parent there: a clear error


def test_collect_on_demand_names_missing_cells_then_completes(tracking_uri, tmp_path):
    from mlflow.tracking import MlflowClient

    from emd.cli import main
    from emd.tracking import Tracker

    tracker = Tracker(tracking_uri)
    with tracker.run("grid-collect", run_name="direct grid", tags={
            "emd.entry": "direct", "emd.grid_role": "parent", "emd.grid_cells": "medical/subtle,medical/severe"}) as p:
        parent = p.info.run_id
        for cell, honesty in (("vanilla", 80.0), ("medical/subtle", 70.0)):
            d, _, lv = cell.partition("/")
            tags = {"emd.cell": cell, **({"emd.domain": d, "emd.level": lv} if lv else {"emd.grid_reference": "1"})}
            with tracker.run("grid-collect", run_name=cell, nested=True, tags=tags):
                tracker.log_metrics({"mask/honesty_logprob": honesty})
    argv = ["collect", "--experiment", "grid-collect", "--tracking-uri", tracking_uri]
    assert main(argv) == 3  # medical/severe has no FINISHED run yet
    client = MlflowClient(tracking_uri)
    run = client.get_run(parent)
    assert run.info.status == "FAILED" and "medical/severe" in run.data.tags["emd.error"]
    assert run.data.metrics["n_cells_missing"] == 1 and run.data.metrics["vanilla/mask/honesty_logprob"] == 80.0
    with tracker.run("grid-collect", run_id=parent):
        with tracker.run("grid-collect", run_name="medical/severe", nested=True,
                         tags={"emd.cell": "medical/severe", "emd.domain": "medical", "emd.level": "severe"}):
            tracker.log_metrics({"mask/honesty_logprob": 60.0})
    assert main(argv) == 0
    run = client.get_run(parent)
    assert run.info.status == "FINISHED" and run.data.metrics["n_cells_missing"] == 0
    table = json.loads(Path(client.download_artifacts(parent, "direct_table.json", str(tmp_path))).read_text())
    rows = {r[table["columns"].index("level")]: r[table["columns"].index("mask/honesty_logprob")] for r in table["data"]}
    assert rows == {"subtle": 70.0, "severe": 60.0}
