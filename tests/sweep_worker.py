"""One sweep process over the cheap synthetic objective, for the multi-process tests in test_sweep.py.

    python tests/sweep_worker.py --storage sqlite:///optuna.db --tracking-uri sqlite:///mlflow.db \
        --ratios 0.1,0.2,0.3 --strategy grid --sleep 1.0 --calls calls.txt [--worker]

The honest rate is 90 below ``--step`` and 60 from it on. Every objective call appends ``start`` /
``end`` lines (ratio, seed, pid) to ``--calls``, which is how the tests count runs per point.
"""

from __future__ import annotations

import argparse
import json
import sys


def make_parser() -> argparse.ArgumentParser:
    """Flags of this helper (the sweep settings a test varies)."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--storage", required=True)
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--study-name", default="workers")
    p.add_argument("--ratios", default="0.1,0.2,0.3,0.4")
    p.add_argument("--seeds", default="0")
    p.add_argument("--strategy", default="grid")
    p.add_argument("--step", type=float, default=0.3, help="ratio from which the honest rate drops")
    p.add_argument("--sleep", type=float, default=0.5, help="seconds per objective call (stands in for training)")
    p.add_argument("--calls", required=True, help="file that gets one line per objective call start/end")
    p.add_argument("--worker", action="store_true", help="join the study instead of leading it")
    p.add_argument("--poll", type=float, default=0.2)
    return p


def main(argv=None) -> int:
    """Run (or join) the study and print its result as one JSON line."""
    args = make_parser().parse_args(argv)
    from emd.config import SweepConfig, build_config
    from emd.sweep import SyntheticProblem, run_study

    cfg = build_config(SweepConfig, overrides={
        "storage": args.storage, "tracking_uri": args.tracking_uri, "study_name": args.study_name,
        "ratios": args.ratios, "seeds": args.seeds, "strategy": args.strategy, "worker": args.worker,
        "register": False})
    step = args.step
    problem = SyntheticProblem(lambda r: 90.0 if r < step - 1e-9 else 60.0, n_items=100, sleep_s=args.sleep,
                               calls_file=args.calls)
    # a killed trial is stale after 3 s without heartbeat (production: 60 s), so the resume test is quick
    res = run_study(cfg, problem, poll_s=args.poll, heartbeat_s=1.0, stale_after_s=3.0, join_timeout_s=120)
    print(json.dumps({"ran_here": res.ran_here, "n_finetunes": res.n_finetunes, "parent_run_id": res.parent_run_id,
                      "threshold": res.verdict.threshold if res.verdict else None,
                      "status": res.verdict.status if res.verdict else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
