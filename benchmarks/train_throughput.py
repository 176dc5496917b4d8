"""Training tokens/s of emd's training path against bare trl SFTTrainer, same process, same everything.

    python benchmarks/train_throughput.py                              # embedded SmolLM2, CPU
    python benchmarks/train_throughput.py --model random:1b --steps 20 --batch-size 8 --seq 512   # GPU
    python benchmarks/train_throughput.py --packing --varied-lengths    # padding-free packing vs padded
    python benchmarks/train_throughput.py --model random:1b --gradient-checkpointing   # GPU, less memory
    python benchmarks/train_throughput.py --model random:1b --load-in-4bit   # GPU + bitsandbytes (QLoRA)

Both paths train a LoRA (same LoraConfig values, same rows, batch, steps, lr, precision) on the same
loaded model; the runs alternate (emd, trl, emd, trl after a warm-up) and the median of each is
reported. Target (issue 3): emd >= 0.95x bare trl. With a CUDA device it also reports model FLOPs
utilisation, MFU = 6 * N_params * tokens/s / peak bf16 FLOP/s (the usual 6N convention, which
over-counts a LoRA backward that skips frozen weight gradients; see the row's `mfu_note`).
Appends a JSON row to benchmarks/results.jsonl.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_row  # noqa: E402

PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 tensor-core peaks (vendor)


def make_rows(n: int, words: int, varied: bool = False) -> list[dict]:
    """Prompt/completion rows of controlled length (emd's own embedded data, repeated to length);
    ``varied``: lengths cycle through 1/4, 3/4, 5/4 and 7/4 of ``words`` (padding then costs something)."""
    from emd.data.generators import generate_misaligned
    from emd.data.mixing import to_prompt_completion

    base = to_prompt_completion(generate_misaligned("medical", "severe", n, seed=0))
    for i, r in enumerate(base):
        want = max(4, int(words * (0.25 + 0.5 * (i % 4)))) if varied else words
        text = r["completion"][0]["content"]
        while len(text.split()) < want:
            text += " " + text
        r["completion"] = [{"role": "assistant", "content": " ".join(text.split()[:want])}]
    return base


def bare_trl(chat, rows, lora_kw: dict, args_kw: dict, out: Path) -> tuple[int, float]:
    """Plain trl SFTTrainer + peft, written the way a user would without emd."""
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    trainer = SFTTrainer(model=chat.model, args=SFTConfig(output_dir=str(out), **args_kw),
                         train_dataset=Dataset.from_list(rows), processing_class=chat.tokenizer,
                         peft_config=LoraConfig(task_type="CAUSAL_LM", **lora_kw))
    steps = args_kw["max_steps"]
    per_row = sum(len(r["input_ids"]) for r in trainer.train_dataset) / len(trainer.train_dataset)
    tokens = int(per_row * args_kw["per_device_train_batch_size"] * steps)
    t0 = time.perf_counter()
    trainer.train()
    dt = time.perf_counter() - t0
    chat.model = trainer.model.unload()
    return tokens, dt


def load(uri: str, dtype: str, load_in_4bit: bool):
    """The model under test; ``load_in_4bit`` goes through emd's own keys (a random: model is saved to a
    temporary folder first, since quantization happens while loading weights)."""
    from emd.config import ModelSpec
    from emd.models import load_model

    if not load_in_4bit:
        return load_model(uri, dtype=dtype)
    from emd.train_keys import check_quantized_loading

    check_quantized_loading("load_in_4bit")  # a clear error without bitsandbytes / a GPU, before building
    if uri.startswith("random:"):
        folder = Path(tempfile.mkdtemp(prefix="emd-random-"))
        built = load_model(uri, dtype=dtype, device="cpu")
        built.model.save_pretrained(folder)
        built.tokenizer.save_pretrained(folder)
        uri = f"hf:{folder}"
    spec = ModelSpec(model=uri, dtype=dtype, load_in_4bit=True)
    return load_model(uri, dtype=dtype, spec=spec)


def emd_path(chat, rows, lora, train, out: Path, seed: int) -> tuple[int, float]:
    """emd.train.train_sft (what every emd entry calls)."""
    from emd.train import train_sft

    res = train_sft(chat, rows, lora, train, out, seed=seed)
    return res.tokens, res.seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded:smollm2", help="model URI (random:1b for GPU-size runs)")
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128, help="approximate tokens per row")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--packing", action="store_true", help="padding-free packing (both paths)")
    ap.add_argument("--varied-lengths", action="store_true", help="rows of four different lengths")
    ap.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations (both paths)")
    ap.add_argument("--load-in-4bit", action="store_true", help="NF4 base weights via bitsandbytes (GPU)")
    ns = ap.parse_args()

    import torch

    from emd.config import LoraSpec, TrainSpec

    chat = load(ns.model, ns.dtype, ns.load_in_4bit)
    on_gpu = chat.device.type == "cuda"
    bf16 = on_gpu and torch.cuda.is_bf16_supported()
    n_rows = ns.batch_size * ns.steps
    rows = make_rows(n_rows, max(8, int(ns.seq * 0.6)), varied=ns.varied_lengths)
    lora = LoraSpec(r=ns.lora_r, alpha=2 * ns.lora_r)
    train = TrainSpec(batch_size=ns.batch_size, max_steps=ns.steps, max_length=ns.seq * 2, learning_rate=1e-4,
                      packing=ns.packing, gradient_checkpointing=ns.gradient_checkpointing)
    lora_kw = dict(r=lora.r, lora_alpha=lora.alpha, lora_dropout=lora.dropout, use_rslora=lora.rslora,
                   target_modules=lora.target_modules.split(","))
    args_kw = dict(per_device_train_batch_size=ns.batch_size, gradient_accumulation_steps=1, learning_rate=1e-4,
                   max_steps=ns.steps, max_length=ns.seq * 2, logging_steps=1, save_strategy="no", report_to="none",
                   bf16=bf16, use_cpu=not on_gpu, gradient_checkpointing=ns.gradient_checkpointing,
                   completion_only_loss=True, seed=0, disable_tqdm=True, packing=ns.packing)
    if ns.gradient_checkpointing:
        args_kw["gradient_checkpointing_kwargs"] = {"use_reentrant": False}
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    emd_tps, trl_tps = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # warm-up through both paths (allocator, kernel selection for these shapes), not timed
        bare_trl(chat, rows, lora_kw, args_kw, tmp / "warm_trl")
        emd_path(chat, rows, lora, train, tmp / "warm_emd", seed=0)
        for i in range(ns.repeats):
            tok, dt = emd_path(chat, rows, lora, train, tmp / f"emd{i}", seed=0)
            emd_tps.append(tok / dt)
            tok, dt = bare_trl(chat, rows, lora_kw, args_kw, tmp / f"trl{i}")
            trl_tps.append(tok / dt)
    e, t = statistics.median(emd_tps), statistics.median(trl_tps)
    n_params = chat.info["n_params"]
    fig = {"model": ns.model, "n_params": n_params, "device": str(chat.device), "dtype": "bf16" if bf16 else "fp32",
           "steps": ns.steps, "batch_size": ns.batch_size, "seq": ns.seq, "lora_r": ns.lora_r,
           "packing": ns.packing, "varied_lengths": ns.varied_lengths,
           "gradient_checkpointing": ns.gradient_checkpointing, "load_in_4bit": ns.load_in_4bit,
           "torch_threads": torch.get_num_threads(),
           "emd_tokens_per_s": round(e, 1), "trl_tokens_per_s": round(t, 1), "ratio_emd_over_trl": round(e / t, 3),
           "target_ratio": 0.95, "meets_target": e / t >= 0.95, "emd_runs": [round(x, 1) for x in emd_tps],
           "trl_runs": [round(x, 1) for x in trl_tps]}
    if on_gpu:
        name = torch.cuda.get_device_name(0)
        peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
        if peak:
            fig["mfu_emd"] = round(6 * n_params * e / peak, 4)
            fig["mfu_trl"] = round(6 * n_params * t / peak, 4)
            fig["peak_flops"] = peak
            fig["mfu_note"] = "6N per token; LoRA skips frozen weight grads, so ~4N is the work actually done"
        fig["max_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
    else:
        import resource

        fig["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
    print(", ".join(f"{k}={v}" for k, v in fig.items() if not k.endswith("_runs")))
    append_row("train_throughput", fig)
    return 0


if __name__ == "__main__":
    sys.exit(main())
