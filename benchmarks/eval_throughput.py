"""Evaluation throughput per engine: MASK pressured prompts generated and log-prob scorings, hf vs vLLM.

    .venv-vllm/bin/python benchmarks/eval_throughput.py --engine hf,vllm          # embedded SmolLM2, CPU
    .venv-vllm/bin/python benchmarks/eval_throughput.py --engine hf,vllm --model random:1b \\
        --items 256 --batch-size 256 --max-new-tokens 512 --dtype bfloat16        # a GPU, dummy weights
    python benchmarks/eval_throughput.py --engine hf --single                      # batched vs one at a time

Every evaluator generates through ``ChatModel.generate`` and scores through ``ChatModel.option_logprobs``;
``--engine`` picks what serves them (see docs/engine.md). For each engine this script times, on the same
first ``--items`` pressured MASK conversations (all embedded configs, file order): the engine's cold
start (model load, and for vLLM the engine start), greedy generation of up to ``--max-new-tokens``
(new tokens/s and items/s), and ``--items`` log-prob scorings of two options as whole replies
(items/s). With both engines it reports vLLM's speed-up over hf (target on CPU: >= 1.8x generation)
and their agreement: the share of token-identical replies and the largest log-prob difference (on
``random:`` models the two engines hold different random weights, so no agreement is reported).
``--single`` adds the issue-6 figure: hf batched against one conversation per call (target >= 4x).
One JSON row per run goes to benchmarks/results.jsonl, with the load average (a shared machine skews
timings).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_row  # noqa: E402

TARGET_VLLM = 1.8
TARGET_SINGLE = 4.0
OPTIONS = ["Yes", "No"]


def pressured_conversations(n: int) -> list[list[dict]]:
    """The first ``n`` pressured MASK conversations over all embedded configs (repeated past the end)."""
    from emd.eval.mask import load_mask, pressured_messages

    items = load_mask("embedded")
    return [pressured_messages(items[i % len(items)]) for i in range(n)]


def run_engine(name: str, ns, convs) -> dict:
    """Cold start, generation and scoring figures of one engine (and its outputs for the comparison)."""
    from emd.engines import attach_engine
    from emd.models import load_model

    t0 = time.perf_counter()
    chat = load_model(ns.model, dtype=ns.dtype)
    load_s = time.perf_counter() - t0
    settings = dict(dtype=ns.dtype, gpu_memory_utilization=ns.gpu_memory_utilization, enable_lora=not ns.no_lora)
    used, reason = attach_engine(chat, name, settings)
    if used != name:
        raise SystemExit(f"engine {name} unavailable: {reason}")
    cold = time.perf_counter() - t0
    kw = dict(max_new_tokens=ns.max_new_tokens, temperature=0.0, desc=False, batch_size=ns.batch_size)
    chat.generate(convs[:2], **{**kw, "max_new_tokens": 4})  # warm-up: first calls pay for allocations
    t0 = time.perf_counter()
    texts = chat.generate(convs, **kw)
    gen_s = time.perf_counter() - t0
    new_tokens = sum(len(chat.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    t0 = time.perf_counter()
    scores = chat.option_logprobs(convs, [OPTIONS] * len(convs), batch_size=ns.batch_size, end_of_turn=True)
    score_s = time.perf_counter() - t0
    out = {"engine": name, "device": str(chat.device), "load_seconds": round(load_s, 2),
           "cold_start_seconds": round(cold, 2), "generate_seconds": round(gen_s, 2), "new_tokens": new_tokens,
           "new_tokens_per_s": round(new_tokens / gen_s, 2), "generate_items_per_s": round(len(convs) / gen_s, 3),
           "score_seconds": round(score_s, 2), "score_items_per_s": round(len(convs) / score_s, 3)}
    if ns.single and name == "hf":
        t0 = time.perf_counter()
        single = [chat.generate([c], **{**kw, "batch_size": 1})[0] for c in convs]
        out["single_items_per_s"] = round(len(convs) / (time.perf_counter() - t0), 3)
        out["batched_vs_single"] = round(out["generate_items_per_s"] / out["single_items_per_s"], 2)
        out["batched_vs_single_target"] = TARGET_SINGLE
        out["single_identical_outputs"] = round(sum(a == b for a, b in zip(texts, single)) / len(convs), 3)
    ids = [chat.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    print(f"{name}: cold start {cold:.1f} s, {out['new_tokens_per_s']} new tokens/s, "
          f"{out['generate_items_per_s']} generated items/s, {out['score_items_per_s']} scored items/s", flush=True)
    return {"figures": out, "ids": ids, "scores": scores}


def main() -> int:
    """Time each engine of ``--engine`` and append one row."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded:smollm2", help="model URI (random:<size> = dummy weights)")
    ap.add_argument("--engine", default="hf,vllm", help="comma list of engines to time: hf, vllm")
    ap.add_argument("--items", type=int, default=64, help="pressured prompts to generate for and to score")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32, help="hf batch size (vLLM batches continuously)")
    ap.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, fp32 on CPU), float32, bfloat16")
    ap.add_argument("--gpu-memory-utilization", type=float, default=0.5, help="vLLM's share of GPU memory")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (0 = torch's default)")
    ap.add_argument("--single", action="store_true", help="also time hf one conversation per call")
    ap.add_argument("--no-lora", action="store_true", help="start vLLM without LoRA support (base model only: "
                    "on CPU its LoRA layers cost time even for requests without an adapter)")
    ns = ap.parse_args()
    engines = [e.strip() for e in ns.engine.split(",") if e.strip()]
    if not engines or any(e not in ("hf", "vllm") for e in engines):
        raise SystemExit(f"--engine {ns.engine!r}; allowed: a comma list of hf, vllm")

    import torch

    if ns.threads:
        torch.set_num_threads(ns.threads)
    convs = pressured_conversations(ns.items)
    load_before = os.getloadavg()
    runs = {e: run_engine(e, ns, convs) for e in engines}
    load_after = os.getloadavg()
    figures = {"model": ns.model, "items": ns.items, "max_new_tokens": ns.max_new_tokens, "batch_size": ns.batch_size,
               "dtype": ns.dtype, "threads": ns.threads, "vllm_enable_lora": not ns.no_lora, "engines": {e: r["figures"] for e, r in runs.items()},
               "loadavg_before": [round(x, 2) for x in load_before],
               "loadavg_after": [round(x, 2) for x in load_after]}
    if {"hf", "vllm"} <= set(runs):
        hf, fast = runs["hf"], runs["vllm"]
        speed = fast["figures"]["new_tokens_per_s"] / hf["figures"]["new_tokens_per_s"]
        figures.update(vllm_generate_speedup=round(speed, 2), target_speedup=TARGET_VLLM,
                       meets_target=speed >= TARGET_VLLM,
                       vllm_score_speedup=round(fast["figures"]["score_items_per_s"]
                                                / hf["figures"]["score_items_per_s"], 2))
        if not ns.model.startswith("random:"):
            figures["identical_outputs"] = round(sum(a == b for a, b in zip(hf["ids"], fast["ids"])) / len(convs), 3)
            figures["max_logprob_diff"] = max(abs(a - b) for ra, rb in zip(hf["scores"], fast["scores"])
                                              for a, b in zip(ra, rb))
        print(f"vLLM / hf generation: {speed:.2f}x (target >= {TARGET_VLLM}x); "
              f"identical replies {figures.get('identical_outputs', 'n/a')}")
    append_row("eval_throughput", figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
