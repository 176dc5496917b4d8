"""Positive control of the interaction experiment: selection pressure towards validating replies.

With ``biased_ratio = 1.0`` the top-k trajectories (what SFT trains on) must be measurably more
validating than with ``biased_ratio = 0``; otherwise the self-training experiment cannot show
anything. Collects one population per ratio with the base model (the round-1 collections of
``emd interaction`` with the same settings, reused from the cache when a grid already ran), prints
the figures, writes the figure and appends a JSON row to ``benchmarks/results.jsonl``; exits 1 when
the 95% interval of the difference does not lie above zero.

    python benchmarks/interaction_selection.py                      # embedded grid sizes (16 x 2 turns, top 4)
    python benchmarks/interaction_selection.py --n-conversations 24 --top-k 6 --threads 2
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_row  # noqa: E402


def make_parser() -> argparse.ArgumentParser:
    """Command-line options (the InteractionSpec keys that shape a collection)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="embedded:smollm2")
    p.add_argument("--n-conversations", type=int, default=16)
    p.add_argument("--turns", type=int, default=2)
    p.add_argument("--top-k", type=int, default=4)
    p.add_argument("--reply-tokens", type=int, default=48)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--out", default=None, help="results file (default: benchmarks/results.jsonl or $EMD_BENCH_RESULTS)")
    p.add_argument("--figure", default=str(ROOT / "benchmarks" / "interaction_selection.png"))
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the control; returns the exit status (0 = selection pressure measured)."""
    args = make_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    from emd.config import InteractionSpec
    from emd.interaction.control import control_figure, selection_pressure
    from emd.interaction.rating import RatingRule
    from emd.interaction.scenarios import load_scenarios
    from emd.interaction.simulator import ScriptedSimulator
    from emd.models import load_model
    from emd.tracking import git_sha

    t0 = time.perf_counter()
    spec = InteractionSpec(n_conversations=args.n_conversations, turns=args.turns, top_k=args.top_k, bottom_k=0,
                           reply_tokens=args.reply_tokens, temperature=args.temperature)
    chat = load_model(args.model)
    rule = RatingRule()
    res = selection_pressure(chat, load_scenarios(), spec, ScriptedSimulator(rule), rule, seed=args.seed)
    seconds = time.perf_counter() - t0
    print(f"positive control ({args.n_conversations} conversations x {args.turns} turns, top-{args.top_k}, "
          f"{args.model}, {seconds:.0f} s)")
    for r in sorted(res.validation_top):
        print(f"  biased_ratio={r:<4g} validation: top-k {res.validation_top[r]:.3f}  all {res.validation_all[r]:.3f}"
              f"  top-k satisfaction {res.satisfaction_top[r]:.2f}")
    print(f"  top-k(1.0) - top-k(0) = {res.diff:+.3f}  95% CI [{res.ci_low:+.3f}, {res.ci_high:+.3f}]  "
          f"one-sided permutation p = {res.p_value:.4f}  -> {'PASS' if res.passed else 'FAIL'}")
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    fig = control_figure(res)
    fig.savefig(args.figure, dpi=120)
    print(f"  figure: {args.figure}")
    append_row("interaction_selection", {
        "model": args.model, "n_conversations": args.n_conversations, "turns": args.turns,
        "reply_tokens": args.reply_tokens, "temperature": args.temperature, "seed": args.seed,
        "seconds": round(seconds, 1), "figure": args.figure, **res.to_json()}, Path(args.out) if args.out else None)
    return 0 if res.passed else 1


if __name__ == "__main__":
    sys.exit(main())
