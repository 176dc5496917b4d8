"""Wall time (cold and warm cache) and peak memory of the main job, `python -m emd mixture`.

    python benchmarks/main_job.py                 # default sizes (what `make mixture` runs)
    python benchmarks/main_job.py --args "--n-train 32 --limit 10"
    python benchmarks/main_job.py --warm-only      # after `make mixture`: the warm run alone, on your cache

Cold: an empty emd cache (GGUF conversion + vanilla/control references computed). Warm: the same
command again (conversion and references reused; only the treatment is trained and evaluated).
Target (issue 7): warm under 5 minutes on a 2-core machine at sizes that evaluate >= 20 items per
MASK config. Appends a JSON row to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_row  # noqa: E402


def run_once(args: list[str], cwd: Path, env: dict) -> tuple[float, int]:
    """Run the job in a child process; returns (seconds, exit code)."""
    t0 = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "emd", "mixture", *args], cwd=cwd, env=env,
                       stdout=subprocess.DEVNULL if not os.environ.get("EMD_BENCH_VERBOSE") else None,
                       stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        print(p.stderr[-3000:], file=sys.stderr)
    return dt, p.returncode


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--args", default="", help="extra flags for `emd mixture`")
    ap.add_argument("--keep-model-cache", action="store_true",
                    help="cold run reuses the converted model (measures references only)")
    ap.add_argument("--warm-only", action="store_true",
                    help="one run against the user's emd cache (references computed there before, e.g. by "
                         "`make mixture`); records warm_s only, and whether the references were reused")
    ns = ap.parse_args()
    args = shlex.split(ns.args)
    if ns.warm_only:
        return warm_only(args, ns.args)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        env = dict(os.environ, EMD_CACHE_DIR=str(tmp / "cache"), MLFLOW_TRACKING_URI=f"sqlite:///{tmp / 'mlflow.db'}")
        if ns.keep_model_cache:
            from emd.models import cache_dir

            (tmp / "cache").mkdir()
            (tmp / "cache" / "models").symlink_to(cache_dir() / "models", target_is_directory=True)
        cold, rc1 = run_once(args, tmp, env)
        warm, rc2 = run_once(args, tmp, env)
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    append_row("main_job", {"args": ns.args or "(defaults)", "cold_s": round(cold, 1), "warm_s": round(warm, 1),
                            "peak_rss_mb": round(peak_kb / 1024, 1), "exit_codes": [rc1, rc2],
                            "cold_includes_conversion": not ns.keep_model_cache,
                            "target_warm_s": 300, "warm_meets_target": warm < 300})
    return 0 if rc1 == rc2 == 0 else 1


def warm_only(args: list[str], args_text: str) -> int:
    """One run with the current emd cache and a throw-away tracking store."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        uri = f"sqlite:///{tmp / 'mlflow.db'}"
        env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
        warm, rc = run_once(args, tmp, env)
        from mlflow.tracking import MlflowClient

        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("emd-mixture")
        tags = client.search_runs([exp.experiment_id])[0].data.tags if exp else {}
    reused = tags.get("emd.vanilla_cached") == "True" and tags.get("emd.control_cached") == "True"
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    append_row("main_job", {"args": args_text or "(defaults)", "warm_only": True, "warm_s": round(warm, 1),
                            "references_reused": reused, "peak_rss_mb": round(peak_kb / 1024, 1), "exit_codes": [rc],
                            "target_warm_s": 300, "warm_meets_target": reused and warm < 300})
    print(f"warm run: {warm:.1f} s (references reused: {reused}; target < 300 s), peak RSS {peak_kb / 1024:.0f} MB")
    return 0 if rc == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
