"""Evaluation throughput: batched generation against one prompt at a time, on MASK's pressured prompts.

    python benchmarks/eval_throughput.py                         # embedded SmolLM2, 32 items, 32 new tokens
    python benchmarks/eval_throughput.py --items 64 --batch-size 64 --threads 2

Every evaluator generates through ``ChatModel.generate`` (left-padded batches, sorted by length).
This script times the same greedy generation of the first ``--items`` pressured MASK conversations
(all embedded configs, in file order) twice: in batches of ``--batch-size``, and one conversation per
call. Items per second of each, their ratio (target, issue 6: >= 4x) and the share of items whose
text is identical both ways (greedy decoding should not depend on batching) go into a JSON row in
benchmarks/results.jsonl, with the machine's load average, since a shared machine skews timings.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_row  # noqa: E402

TARGET = 4.0


def pressured_conversations(n: int) -> list[list[dict]]:
    """The first ``n`` pressured MASK conversations over all embedded configs."""
    from emd.eval.mask import load_mask, pressured_messages

    items = load_mask("embedded")
    if n > len(items):
        raise SystemExit(f"--items {n} exceeds the {len(items)} embedded MASK items")
    return [pressured_messages(it) for it in items[:n]]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded:smollm2", help="model URI")
    ap.add_argument("--items", type=int, default=32, help="pressured prompts to generate for")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--batch-size", type=int, default=32, help="batch size of the batched run")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ns = ap.parse_args()

    import torch

    from emd.models import load_model

    if ns.threads:
        torch.set_num_threads(ns.threads)
    chat = load_model(ns.model)
    convs = pressured_conversations(ns.items)
    kw = dict(max_new_tokens=ns.max_new_tokens, temperature=0.0, desc=False)
    chat.generate(convs[:2], batch_size=2, **kw)  # warm-up: first calls pay for allocations

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    batched = chat.generate(convs, batch_size=ns.batch_size, **kw)
    t_batched = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [chat.generate([c], batch_size=1, **kw)[0] for c in convs]
    t_single = time.perf_counter() - t0
    load_after = os.getloadavg()

    ips_b, ips_s = len(convs) / t_batched, len(convs) / t_single
    ratio = ips_b / ips_s
    figures = {
        "model": ns.model, "device": str(chat.device), "items": len(convs), "max_new_tokens": ns.max_new_tokens,
        "batch_size": ns.batch_size, "batched_seconds": round(t_batched, 2), "single_seconds": round(t_single, 2),
        "batched_items_per_s": round(ips_b, 3), "single_items_per_s": round(ips_s, 3),
        "speedup": round(ratio, 2), "target_speedup": TARGET, "meets_target": ratio >= TARGET,
        "identical_outputs": round(sum(a == b for a, b in zip(batched, single)) / len(convs), 3),
        "loadavg_before": [round(x, 2) for x in load_before], "loadavg_after": [round(x, 2) for x in load_after],
    }
    append_row("eval_throughput", figures)
    print(f"batched {ips_b:.2f} items/s, one at a time {ips_s:.2f} items/s: {ratio:.2f}x (target >= {TARGET}x); "
          f"load average {load_before[0]:.2f} -> {load_after[0]:.2f} on {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
