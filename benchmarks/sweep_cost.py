"""Fine-tunes each sweep strategy spends on the same ratio grid.

    python benchmarks/sweep_cost.py                      # the embedded default 7-point grid
    python benchmarks/sweep_cost.py --ratios 0.01,0.02,0.05,0.1,0.2,0.3,0.4,0.5,0.75,1 --no-studies

Three measurements:
1. every monotone step curve on the grid (threshold at each point, or none): fine-tunes per strategy,
   from the pure strategy logic (``emd.sweep.search``);
2. every non-monotone 0/1 curve: how often bisect reports ``inconsistent``, the right threshold, or a
   wrong one (grid and ascending are always right by construction);
3. real Optuna studies (SQLite storage, MLflow store, in a temporary folder) over the synthetic
   objective for one step curve per strategy: COMPLETE trials counted in the storage, and wall time.

Prints a table and appends one JSON row to ``benchmarks/results.jsonl`` (with the load average: the
machine is shared, and part 3 is timed).
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

STRATEGIES = ("grid", "ascending", "bisect")


def make_parser() -> argparse.ArgumentParser:
    """Flags of this benchmark."""
    from emd.config import SweepSpec

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ratios", default=SweepSpec().ratios, help="comma list of ratios [default: the embedded grid]")
    p.add_argument("--study-threshold", type=float, default=None,
                   help="ratio where the synthetic curve drops in part 3 [default: the grid's third point]")
    p.add_argument("--no-studies", action="store_true", help="skip part 3 (real Optuna studies)")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results.jsonl"))
    return p


def monotone_costs(grid: list[float]) -> dict[str, list[int]]:
    """Fine-tunes per strategy for the threshold at each grid point, then for 'none'."""
    from emd.sweep import search

    out: dict[str, list[int]] = {s: [] for s in STRATEGIES}
    for k in range(len(grid) + 1):
        for s in STRATEGIES:
            tr = search(s, grid, lambda r: k < len(grid) and r >= grid[k])
            assert tr.verdict.threshold == (grid[k] if k < len(grid) else None)
            out[s].append(len(tr.order))
    return out


def non_monotone_outcomes(grid: list[float]) -> dict[str, dict[str, int]]:
    """Over all non-monotone 0/1 curves (2^n of them at most 2^12): inconsistent / right / wrong."""
    from emd.sweep import search

    if len(grid) > 12:
        return {}
    res: dict[str, dict[str, int]] = {s: collections.Counter() for s in STRATEGIES}
    for bits in itertools.product([0, 1], repeat=len(grid)):
        if all(not (bits[i] and not bits[j]) for i in range(len(bits)) for j in range(i + 1, len(bits))):
            continue
        curve = dict(zip(grid, bits))
        truth = next((r for r in grid if curve[r]), None)
        for s in STRATEGIES:
            tr = search(s, grid, lambda r: bool(curve[r]))
            key = ("inconsistent" if tr.verdict.status == "inconsistent" else
                   "right" if tr.verdict.threshold == truth else "wrong")
            res[s][key] += 1
    return {s: dict(c) for s, c in res.items()}


def study_costs(grid: list[float], threshold: float) -> dict[str, dict]:
    """Real studies over the synthetic objective: COMPLETE trials and wall time per strategy."""
    from emd.config import SweepConfig, build_config
    from emd.sweep import SyntheticProblem, run_study

    out = {}
    with tempfile.TemporaryDirectory(prefix="emd-sweep-cost-") as d:
        cwd = os.getcwd()
        os.chdir(d)
        try:
            from emd.tracking import Tracker

            Tracker(f"sqlite:///{d}/mlflow.db").search_runs("none")  # create the store before timing (~10 s)
            for s in STRATEGIES:
                cfg = build_config(SweepConfig, overrides={
                    "ratios": ",".join(f"{r:g}" for r in grid), "strategy": s, "study_name": f"cost-{s}",
                    "storage": f"sqlite:///{d}/optuna.db", "tracking_uri": f"sqlite:///{d}/mlflow.db",
                    "register": False})
                problem = SyntheticProblem(lambda r: 90.0 if r < threshold - 1e-9 else 60.0, n_items=100)
                t0 = time.perf_counter()
                res = run_study(cfg, problem, poll_s=0.05, log=lambda _m: None)
                out[s] = {"finetunes": res.n_finetunes, "threshold": res.verdict.threshold,
                          "seconds": round(time.perf_counter() - t0, 2)}
        finally:
            os.chdir(cwd)
    return out


def main(argv=None) -> int:
    """Measure, print, append the JSON row."""
    args = make_parser().parse_args(argv)
    from emd.sweep import max_finetunes
    from emd.tracking import git_sha

    grid = sorted(float(x) for x in args.ratios.split(","))
    n = len(grid)
    t0 = time.perf_counter()
    mono = monotone_costs(grid)
    print(f"grid ({n} points): {', '.join(f'{r:g}' for r in grid)}")
    print("\n1. fine-tunes per strategy, monotone step curves (threshold at each point, then none):")
    print(f"   {'strategy':<10} {'per threshold position':<32} {'mean':>5} {'max':>4} {'bound':>6}")
    for s in STRATEGIES:
        print(f"   {s:<10} {' '.join(map(str, mono[s])):<32} {statistics.mean(mono[s]):5.2f} {max(mono[s]):4d} "
              f"{max_finetunes(s, n):6d}")
    nm = non_monotone_outcomes(grid)
    if nm:
        total = sum(nm["bisect"].values())
        print(f"\n2. non-monotone 0/1 curves ({total}): inconsistent / right / wrong threshold")
        for s in STRATEGIES:
            c = nm[s]
            print(f"   {s:<10} {c.get('inconsistent', 0):4d} / {c.get('right', 0):4d} / {c.get('wrong', 0):4d}")
    studies = {}
    if not args.no_studies:
        thr = args.study_threshold if args.study_threshold is not None else grid[min(2, n - 1)]
        studies = study_costs(grid, thr)
        print(f"\n3. real Optuna studies (SQLite + MLflow), synthetic curve dropping at {thr:g}:")
        for s, r in studies.items():
            print(f"   {s:<10} {r['finetunes']} fine-tunes (COMPLETE trials), threshold {r['threshold']}, "
                  f"{r['seconds']:.1f} s")
    row = {"benchmark": "sweep_cost", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "git_sha": git_sha(),
           "machine": platform.machine(), "cpus": os.cpu_count(), "load_avg": list(os.getloadavg()), "grid": grid,
           "monotone": {s: {"per_threshold": mono[s], "mean": statistics.mean(mono[s]), "max": max(mono[s])}
                        for s in STRATEGIES},
           "non_monotone": nm, "studies": studies, "seconds": round(time.perf_counter() - t0, 2)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"\nappended to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
