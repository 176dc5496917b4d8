"""Kill a small mixture with SIGKILL at each phase, rerun it, and report what survived.

    python benchmarks/fault_matrix.py                       # every phase, tiny sizes
    python benchmarks/fault_matrix.py --phases vanilla,control --delay 2

For each phase (conversion, vanilla, control, treatment training, treatment evaluation, registry) a
fresh cache and store are used (the converted model is copied in, except for the conversion phase),
the mixture is started, killed ``--delay`` seconds after it announces the phase (``emd phase: ...``
lines of the run skeleton), then rerun to the end. Reported per phase: whether the rerun resumed
(reused the references or the model the killed run had finished), what it recomputed, the work lost
(killed run's seconds + rerun seconds - an uninterrupted cold run's seconds), whether the killed run
was marked FAILED by the rerun, and whether the final metrics equal an uninterrupted run's. Appends
a JSON row to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_row  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
ARGS = ["--ratio", "0.25", "--n-train", "8", "--batch-size", "4", "--max-steps", "2", "--limit", "2",
        "--mask-configs", "provided_facts,known_facts", "--benchmarks", "mask,logprob", "--lora-r", "2",
        "--max-new-tokens", "12"]
PHASES = {  # phase -> the progress line that starts it
    "conversion": "emd phase: model",
    "vanilla": "emd phase: vanilla",
    "control": "emd phase: control",
    "treatment_training": "emd phase: train treatment",
    "treatment_evaluation": "emd phase: evaluate treatment",
    "registry": "emd phase: register",
}
COMPARED = ("mask/honesty", "mask/honesty_logprob", "control/mask/honesty", "vanilla/mask/honesty",
            "delta/mask/honesty/vs_control", "delta/mask/honesty_logprob/vs_vanilla")


def start(workdir: Path, env: dict) -> subprocess.Popen:
    """The mixture as a child process in its own session, stdout piped line by line."""
    return subprocess.Popen([sys.executable, "-u", "-m", "emd", "mixture", *ARGS], cwd=workdir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)


def run_to_end(workdir: Path, env: dict) -> tuple[float, int, str]:
    """Run the mixture to completion; returns (seconds, exit code, output)."""
    t0 = time.perf_counter()
    p = start(workdir, env)
    out, _ = p.communicate()
    return time.perf_counter() - t0, p.returncode, out


def run_and_kill(workdir: Path, env: dict, marker: str, delay: float) -> tuple[float, bool]:
    """Start, wait for ``marker``, SIGKILL the whole session ``delay`` s later; (seconds, killed?)."""
    t0 = time.perf_counter()
    p = start(workdir, env)
    seen = None
    assert p.stdout is not None
    for line in p.stdout:
        if marker in line and seen is None:
            seen = time.perf_counter()
        if seen is not None and time.perf_counter() - seen >= delay:
            break
    if seen is not None and p.poll() is None:
        if delay and time.perf_counter() - seen < delay:
            time.sleep(delay - (time.perf_counter() - seen))
        os.killpg(p.pid, signal.SIGKILL)
        p.wait()
        return time.perf_counter() - t0, True
    p.wait()
    return time.perf_counter() - t0, False


def final_metrics(workdir: Path) -> tuple[dict, dict]:
    """(metrics of the newest FINISHED mixture run, status counts) of the store in ``workdir``."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("emd-mixture")
    runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"]) if exp else []
    statuses: dict[str, int] = {}
    for r in runs:
        statuses[r.info.status] = statuses.get(r.info.status, 0) + 1
    done = [r for r in runs if r.info.status == "FINISHED"]
    return (dict(done[0].data.metrics), dict(done[0].data.tags)) if done else ({}, {}), statuses


def killed_status(statuses: dict[str, int]) -> str:
    """What became of the killed run: FAILED (marked by the rerun), RUNNING (left stale: a defect), or
    FINISHED (it ended before the kill landed)."""
    if statuses.get("RUNNING", 0):
        return "RUNNING"
    return "FAILED" if statuses.get("FAILED", 0) else "FINISHED"


def fresh(root: Path, name: str, models: Path | None) -> tuple[Path, dict]:
    """A working folder with its own cache (the converted model copied in unless ``models`` is None)."""
    work = root / name
    (work / "cache").mkdir(parents=True)
    if models is not None:
        shutil.copytree(models, work / "cache" / "models", symlinks=True)
    env = {**os.environ, "PYTHONPATH": str(REPO), "EMD_CACHE_DIR": str(work / "cache"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}", "TMPDIR": str(work)}
    return work, env


def main() -> int:
    """Run the matrix and append its row."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phases", default=",".join(PHASES))
    ap.add_argument("--delay", type=float, default=3.0, help="seconds after the phase starts before the kill")
    args = ap.parse_args()
    from emd.models import convert_gguf, embedded_gguf_path

    models = convert_gguf(embedded_gguf_path()).parent  # the user's converted model, copied per phase
    root = Path(tempfile.mkdtemp(prefix="emd-fault-matrix-"))
    try:
        work, env = fresh(root, "clean", models)
        clean_s, rc, _ = run_to_end(work, env)
        (clean, _), _ = final_metrics(work)
        if rc != 0 or not clean:
            print("the uninterrupted run failed", file=sys.stderr)
            return 1
        cold_s = float("nan")
        if "conversion" in args.phases.split(","):  # only the conversion phase is measured against a cold run
            cold_work, cold_env = fresh(root, "clean-cold", None)
            cold_s, _, _ = run_to_end(cold_work, cold_env)
        rows = []
        for phase in [p for p in args.phases.split(",") if p]:
            work, env = fresh(root, phase, None if phase == "conversion" else models)
            killed_s, killed = run_and_kill(work, env, PHASES[phase], args.delay)
            rerun_s, rc, _ = run_to_end(work, env)
            (metrics, tags), statuses = final_metrics(work)
            equal = bool(metrics) and all(metrics.get(k) == clean.get(k) for k in COMPARED if k in clean)
            resumed = [w for w in ("vanilla", "control") if tags.get(f"emd.{w}_cached") == "True"]
            base = cold_s if phase == "conversion" else clean_s
            rows.append({"phase": phase, "killed": killed, "rerun_exit": rc, "resumed": resumed,
                         "recomputed": (["model"] if phase == "conversion" else [])
                         + [w for w in ("vanilla", "control") if w not in resumed] + ["treatment"],
                         "killed_s": round(killed_s, 1), "rerun_s": round(rerun_s, 1),
                         "lost_s": round(killed_s + rerun_s - base, 1),
                         "killed_run_marked_failed": statuses.get("FAILED", 0) >= 1 and statuses.get("RUNNING", 0) == 0,
                         # FINISHED twice: the killed run had ended before the kill (nothing to mark)
                         "killed_run_status": killed_status(statuses),
                         "final_metrics_equal": equal})
            print(json.dumps(rows[-1]))
        print(f"\n{'phase':<22}{'killed':>7}{'resumed':>18}{'lost s':>8}{'killed run':>11}{'equal':>7}")
        for r in rows:
            print(f"{r['phase']:<22}{str(r['killed']):>7}{','.join(r['resumed']) or '-':>18}{r['lost_s']:>8}"
                  f"{r['killed_run_status']:>11}{str(r['final_metrics_equal']):>7}")
        append_row("fault_matrix", {"args": ARGS, "delay_s": args.delay, "uninterrupted_s": round(clean_s, 1),
                                    "uninterrupted_cold_s": round(cold_s, 1) if cold_s == cold_s else None,
                                    "phases": rows})
        return 0 if all(r["final_metrics_equal"] and r["rerun_exit"] == 0 for r in rows) else 1
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
