"""The same small direct grid run by 1 and by 2 worker processes against real shared services.

    python benchmarks/grid_workers.py                       # medical x subtle,severe, tiny sizes
    python benchmarks/grid_workers.py --levels normal,subtle,severe --workers 1,2,3

Starts a private PostgreSQL cluster and an ``mlflow server`` on it (tests/services.py), then, for each
worker count, a fresh Optuna database and experiment and that many ``python -m emd direct ...
--storage ...`` processes (each with its own empty EMD_CACHE_DIR, ``--reuse-references false`` so
every run computes its reference once). Reports the wall time per worker count and, per worker, the
trainings and the reference evaluations it ran (counted from its log) and the trials it completed
(from the study). On a shared 2-core machine expect little speed-up: the figures that matter are
that the work is split and nothing runs twice. Appends one JSON row to ``benchmarks/results.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(REPO / "tests"))


def make_parser() -> argparse.ArgumentParser:
    """Flags of this benchmark."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--domains", default="medical")
    p.add_argument("--levels", default="subtle,severe")
    p.add_argument("--workers", default="1,2", help="comma list of worker counts")
    p.add_argument("--max-steps", default="1")
    p.add_argument("--limit", default="2")
    return p


def run_grid(n: int, pg, uri: str, root: Path, args) -> dict:
    """One grid with ``n`` workers: wall time and per-worker counts."""
    import optuna

    url = pg.url(f"grid_bench_{n}_{int(time.time())}")
    cmd = [sys.executable, "-m", "emd", "direct", "--domain", args.domains, "--level", args.levels,
           "--n-train", "4", "--batch-size", "4", "--max-steps", args.max_steps, "--limit", args.limit,
           "--benchmarks", "logprob", "--mask-configs", "provided_facts", "--lora-r", "2", "--register", "false",
           "--reuse-references", "false", "--storage", url, "--tracking-uri", uri,
           "--experiment", f"bench-grid-{n}-{int(time.time())}"]
    models = Path(os.environ.get("EMD_CACHE_DIR") or "~/.cache/emd").expanduser() / "models"
    procs, logs = [], []
    t0 = time.perf_counter()
    for i in range(n):
        cache = root / f"n{n}-cache{i}"
        cache.mkdir(parents=True)
        (cache / "models").symlink_to(models, target_is_directory=True)
        log = root / f"n{n}-worker{i}.log"
        env = {**os.environ, "EMD_CACHE_DIR": str(cache), "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        procs.append(subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env, cwd=root))
        logs.append(log)
    rcs = [p.wait() for p in procs]
    wall = time.perf_counter() - t0
    (summary,) = optuna.get_all_study_summaries(url)
    trials = optuna.load_study(study_name=summary.study_name, storage=url).get_trials(deepcopy=False)
    per_worker = []
    for p, log in zip(procs, logs):
        text = log.read_text()
        done = [t.user_attrs.get("emd.cell") for t in trials
                if t.state.name == "COMPLETE" and str(t.user_attrs.get("emd.worker", "")).endswith(f":{p.pid}")]
        per_worker.append({"pid": p.pid, "rc": p.returncode, "trainings": text.count("emd phase: train "),
                           "reference_evaluations": text.count("vanilla: judge-free"), "completed": done})
    cells = [t.user_attrs.get("emd.cell") for t in trials if t.state.name == "COMPLETE"]
    return {"workers": n, "wall_s": round(wall, 1), "rcs": rcs, "per_worker": per_worker,
            "complete_trials": len(cells), "duplicate_cells": len(cells) - len(set(cells))}


def main(argv=None) -> int:
    """Run the grid for each worker count; print and append the figures."""
    from _common import append_row
    from services import mlflow_server, postgres_cluster, skip_reason

    args = make_parser().parse_args(argv)
    if reason := skip_reason():
        print(f"grid_workers: cannot run: {reason}")
        return 1
    load0 = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory(prefix="emd-bench-grid-") as tmp:
        root = Path(tmp)
        with postgres_cluster() as pg, mlflow_server(pg.url("mlflow"), root / "artifacts") as uri:
            for n in [int(x) for x in args.workers.split(",")]:
                r = run_grid(n, pg, uri, root, args)
                rows.append(r)
                print(f"{n} worker(s): {r['wall_s']:.1f} s; " + "; ".join(
                    f"pid {w['pid']}: {w['trainings']} trainings, {w['reference_evaluations']} reference evaluations, "
                    f"ran {', '.join(w['completed'])}" for w in r["per_worker"]) + f"; duplicates {r['duplicate_cells']}")
    append_row("grid_workers", {"grid": f"{args.domains} x {args.levels}", "max_steps": args.max_steps,
                                "limit": args.limit, "load_avg_start": load0, "load_avg_end": os.getloadavg()[0],
                                "runs": rows})
    return 0 if all(all(rc == 0 for rc in r["rcs"]) for r in rows) else 3


if __name__ == "__main__":
    sys.exit(main())
