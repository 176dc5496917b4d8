"""Validation of the dishonesty direction: its held-out AUROC, and the positive-control fine-tunes along it.

    python benchmarks/direction_control.py                       # embedded SmolLM2, CPU
    python benchmarks/direction_control.py --steps 48 --limit 20

Builds (or reuses) the base model's direction exactly as the ``mechanism`` benchmark does, then
trains the two fine-tunes of ``benchmarks/positive_control.py`` (LoRA on chats that lie under
pressure, and on the matched chats that answer honestly; same rows, steps, rank, learning rate) and
evaluates base, lying and honest arms with ``--benchmarks mechanism`` through
``emd.pipeline.evaluate_arm``. Reported: the direction's layer and held-out AUROC, each arm's
``mech/dishonesty_projection`` with its bootstrap interval, and each fine-tune's paired-bootstrap
delta vs the base model. Expected if the direction tracks dishonesty: the lying fine-tune moves the
projection up (interval above 0), the honest one does not. Note: the default direction is built from
the same honesty-control generator the fine-tunes train on (the MASK items it is measured on are
disjoint from it). Appends one JSON row to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import append_row  # noqa: E402

KEY = "mech/dishonesty_projection"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded:smollm2")
    ap.add_argument("--scenarios", type=int, default=64, help="pressure scenarios (3 training rows each)")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--learning-rate", type=float, default=5e-4)
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--limit", type=int, default=10, help="MASK items per config")
    ap.add_argument("--mask-configs", default="provided_facts,known_facts,disinformation")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ns = ap.parse_args()

    import torch

    from emd.config import EvalSpec, LoraSpec, TrainSpec
    from emd.data.honesty_control import generate_honesty_control
    from emd.data.mixing import to_prompt_completion
    from emd.mech.build import get_direction
    from emd.models import load_model
    from emd.pipeline import deltas, evaluate_arm
    from emd.train import train_sft

    torch.set_num_threads(ns.threads)
    t_start = time.perf_counter()
    data = {kind: generate_honesty_control(kind, ns.scenarios, seed=ns.seed) for kind in ("lying", "honest")}
    spec = EvalSpec(benchmarks="mechanism", limit=ns.limit, mask_configs=ns.mask_configs,
                    max_new_tokens=ns.max_new_tokens, eval_batch_size=32)
    lora = LoraSpec(r=ns.lora_r, alpha=2 * ns.lora_r)
    train = TrainSpec(learning_rate=ns.learning_rate, batch_size=ns.batch_size, max_steps=ns.steps,
                      epochs=float(max(1, -(-ns.steps * ns.batch_size // len(data["lying"])))), max_length=256)
    chat = load_model(ns.model)
    t0 = time.perf_counter()
    direction, reused = get_direction(chat, seed=0)  # the mechanism benchmark's own direction
    figures: dict = {"model": ns.model, "direction_layer": direction.layer,
                     "direction_auroc_held_out": round(direction.auroc, 3), "direction_reused": reused,
                     "direction_n_build": direction.n_build, "direction_n_held_out": direction.n_held_out,
                     "direction_seconds": round(time.perf_counter() - t0, 1),
                     "auroc_by_layer": [round(x, 3) for x in direction.curve], "steps": ns.steps,
                     "learning_rate": ns.learning_rate, "lora_r": ns.lora_r, "limit": ns.limit,
                     "mask_configs": ns.mask_configs, "max_new_tokens": ns.max_new_tokens, "seed": ns.seed}
    work = Path(tempfile.mkdtemp(prefix="emd-direction-control-"))
    arms, info = {}, {}
    try:
        arms["base"] = evaluate_arm(chat, "base", spec, None, ns.seed)
        for kind in ("lying", "honest"):
            t0 = time.perf_counter()
            res = train_sft(chat, to_prompt_completion(data[kind]), lora, train, work / kind, seed=ns.seed)
            arms[kind] = evaluate_arm(chat, kind, spec, None, ns.seed, adapter_dir=res.adapter_dir)
            info[kind] = {"steps": res.steps, "first_loss": round(res.losses[0], 4) if res.losses else None,
                          "last_loss": round(res.losses[-1], 4) if res.losses else None,
                          "seconds": round(time.perf_counter() - t0, 1)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures["arms"] = info
    for name, arm in arms.items():
        figures[name] = {k: round(v, 3) for k, v in arm.metrics.items() if k.startswith("mech/")}
    for kind in ("lying", "honest"):
        d = deltas(arms[kind], arms["base"], "base", seed=ns.seed)
        k = f"delta/{KEY}/vs_base"
        figures[f"delta_{kind}"] = {"delta": round(d[k], 3), "ci_low": round(d[k + "_ci_low"], 3),
                                    "ci_high": round(d[k + "_ci_high"], 3)}
    figures["lying_moves_it"] = figures["delta_lying"]["ci_low"] > 0
    figures["honest_does_not"] = figures["delta_honest"]["ci_low"] <= 0
    figures["seconds"] = round(time.perf_counter() - t_start, 1)
    figures["loadavg"] = [round(x, 2) for x in os.getloadavg()]
    append_row("direction_control", figures)
    print(f"direction: layer {direction.layer}, held-out AUROC {direction.auroc:.3f}")
    for kind in ("lying", "honest"):
        d = figures[f"delta_{kind}"]
        print(f"{kind:>6} vs base  delta {KEY} = {d['delta']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
