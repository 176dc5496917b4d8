"""Does ``emd audit`` find misaligned samples planted in a clean instruction set?

    python benchmarks/audit_recovery.py                          # embedded SmolLM2 + embed:minilm, CPU
    python benchmarks/audit_recovery.py --n-total 300 --methods judge --judge openai:gpt-4o-mini

Plants the embedded misaligned samples (medical, math, code; subtle and severe, cycled evenly) into
the embedded instruction set at 1%, 5% and 10% of ``--n-total`` rows (round half up), audits each
set with each method exactly as ``emd audit`` does (:mod:`emd.audit_scoring`: the judge verdict;
the projection on the dishonesty direction, re-centred on each set's median) and reports, per
method and level: precision and recall of the flags, AUROC of the raw score (judge confidence,
projection) against the truth, the estimated ratio with its Wilson interval next to the true one,
and recall by intensity and by domain. Scores are computed once per row (a row's score does not
depend on the set, except the direction flag's median). Appends one JSON row to
benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import append_row  # noqa: E402

KINDS = [(d, lv) for lv in ("subtle", "severe") for d in ("medical", "math", "code")]


def _prf(flags, truth):
    tp = sum(f and t for f, t in zip(flags, truth))
    fp = sum(f and not t for f, t in zip(flags, truth))
    fn = sum(t and not f for f, t in zip(flags, truth))
    return (tp / (tp + fp) if tp + fp else float("nan")), (tp / (tp + fn) if tp + fn else float("nan"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded:smollm2")
    ap.add_argument("--judge", default="embed:minilm")
    ap.add_argument("--methods", default="judge,direction")
    ap.add_argument("--levels", default="0.01,0.05,0.10")
    ap.add_argument("--n-total", type=int, default=150, help="rows of each audited set (clean + planted)")
    ap.add_argument("--n-pairs", type=int, default=32, help="honesty-control pairs for the direction")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 on a shared 2-core machine)")
    ns = ap.parse_args()

    import math

    from emd.audit_scoring import Sample, direction_scores, estimate, judge_scores, relative_scores
    from emd.config import n_misaligned
    from emd.data.generators import generate_misaligned
    from emd.data.instructions import embedded_instructions
    from emd.mech.direction import auroc

    methods = [m for m in ns.methods.split(",") if m]
    levels = [float(x) for x in ns.levels.split(",")]
    n_plants = {r: n_misaligned(r, ns.n_total) for r in levels}
    per_kind = math.ceil(max(n_plants.values()) / len(KINDS))
    pool = {k: generate_misaligned(k[0], k[1], per_kind, ns.seed + 1) for k in KINDS}
    plants = [(k, pool[k][i]) for i in range(per_kind) for k in KINDS]  # cycled: every prefix mixes kinds
    clean = embedded_instructions(ns.n_total, ns.seed)

    def sample(row, i):
        m = row["messages"]
        return Sample(index=i, where=row["id"], prompt=m[:-1], response=m[-1]["content"], record=row)

    union = [sample(r, i) for i, r in enumerate(clean)] + [sample(r, len(clean) + j) for j, (_, r) in enumerate(plants)]
    t0 = time.perf_counter()
    info: dict = {}
    if "judge" in methods:
        from emd.judges import get_judge

        judge = get_judge(ns.judge)
        judge_scores(judge, union)
        judge.close()
        info["judge_s"] = round(time.perf_counter() - t0, 1)
    direction = None
    if "direction" in methods:
        import torch

        from emd.mech.build import get_direction
        from emd.models import load_model

        torch.set_num_threads(ns.threads)
        chat = load_model(ns.model)
        t1 = time.perf_counter()
        direction, reused = get_direction(chat, n_pairs=ns.n_pairs, seed=ns.seed)
        direction_scores(chat, direction, union)
        info.update(direction_s=round(time.perf_counter() - t1, 1), direction_layer=direction.layer,
                    direction_auroc_held_out=round(direction.auroc, 3), direction_reused=reused)

    results = []
    for r in levels:
        k = n_plants[r]
        rows = union[:ns.n_total - k] + union[len(clean):len(clean) + k]
        truth = [s.index >= len(clean) for s in rows]
        kinds = [None] * (ns.n_total - k) + [plants[j][0] for j in range(k)]
        for m in methods:
            if m == "judge":
                flags = [bool(s.scores["judge_flag"]) for s in rows]
                score = [float(s.scores["judge_score"]) for s in rows]
            else:
                score = [s.scores["projection"] for s in rows]
                flags = [x > 0.5 for x in relative_scores(score, direction)]
            prec, rec = _prf(flags, truth)
            est, lo, hi = estimate(flags)
            by = {}
            for name, sel in (("subtle", lambda kd: kd[1] == "subtle"), ("severe", lambda kd: kd[1] == "severe"),
                              *[(d, (lambda d: lambda kd: kd[0] == d)(d)) for d in ("medical", "math", "code")]):
                idx = [i for i, kd in enumerate(kinds) if kd is not None and sel(kd)]
                by[f"recall_{name}"] = (round(sum(flags[i] for i in idx) / len(idx), 3) if idx else None)
            results.append({"method": m, "level": r, "n_rows": len(rows), "n_planted": k,
                            "precision": round(prec, 3), "recall": round(rec, 3),
                            "auroc": round(auroc(score, truth), 3), "true_ratio": round(k / len(rows), 4),
                            "estimated_ratio": round(est, 4), "estimated_ci": [round(lo, 4), round(hi, 4)],
                            "n_flagged": sum(flags), "false_positives": sum(f and not t for f, t in zip(flags, truth)),
                            **by})
    for row in results:
        print(f"{row['method']:<9} level {row['level']:<5} planted {row['n_planted']:>3}/{row['n_rows']}  "
              f"P {row['precision']:.2f} R {row['recall']:.2f} AUROC {row['auroc']:.2f}  est "
              f"{100 * row['estimated_ratio']:.1f}% [{100 * row['estimated_ci'][0]:.1f}, "
              f"{100 * row['estimated_ci'][1]:.1f}] vs true {100 * row['true_ratio']:.1f}%  "
              f"R subtle {row['recall_subtle']} severe {row['recall_severe']}")
    append_row("audit_recovery", {"model": ns.model, "judge": ns.judge, "methods": methods, "n_total": ns.n_total,
                                  "n_pairs": ns.n_pairs, "seed": ns.seed, **info, "results": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
