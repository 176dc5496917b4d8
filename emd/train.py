"""LoRA fine-tuning: SFT (trl SFTTrainer) and KTO (trl KTOTrainer), both through peft.

Data arrives in trl's conversational prompt/completion form, so the loss covers the assistant's
completion only (SmolLM2's template has no generation markers, so ``assistant_only_loss`` on a
``messages`` dataset cannot work there). CPU traps measured here: bf16 must be off (the default
bf16 raises; use_cpu + bf16 runs 13x slower) and gradient checkpointing must be off.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from .config import LoraSpec, TrainSpec


def get_peft_config(spec: LoraSpec):
    """LoraSpec -> peft.LoraConfig. The one place LoRA options become a peft config."""
    from peft import LoraConfig

    return LoraConfig(
        r=spec.r,
        lora_alpha=spec.alpha,
        lora_dropout=spec.dropout,
        use_rslora=spec.rslora,
        # Without explicit target_modules peft adapts only q and v; the paper adapts all seven.
        target_modules=[m.strip() for m in spec.target_modules.split(",") if m.strip()],
        bias="none",
        task_type="CAUSAL_LM",
    )


@dataclass
class TrainResult:
    """What a training run produced."""

    adapter_dir: Path
    steps: int
    train_loss: float | None
    tokens: int  # completion+prompt tokens seen (non-padding), for throughput
    seconds: float
    losses: list[float] = field(default_factory=list)

    @property
    def tokens_per_s(self) -> float:
        """Training throughput over non-padding tokens."""
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")


def _common_args(train: TrainSpec, output_dir: Path, seed: int, n_rows: int, on_gpu: bool, bf16: bool) -> dict:
    steps_per_epoch = max(1, math.ceil(n_rows / (train.batch_size * train.grad_accum)))
    return dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        learning_rate=train.learning_rate,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        warmup_steps=int(train.warmup_ratio * steps_per_epoch * train.epochs),
        lr_scheduler_type="linear",
        logging_steps=1,
        save_strategy="no",
        report_to="none",  # emd logs to MLflow itself (tracking.py); trl's callback would open its own run
        seed=seed,
        data_seed=seed,
        bf16=bf16,
        fp16=False,
        use_cpu=not on_gpu,
        gradient_checkpointing=False,  # slower on CPU and pointless for a LoRA on small models
        dataloader_num_workers=0,
        disable_tqdm=False,
        remove_unused_columns=True,
    )


def _make_progress_callback(progress: Callable[[dict], None] | None):
    from transformers import TrainerCallback

    class CB(TrainerCallback):
        def __init__(self):
            self.losses: list[float] = []

        def on_log(self, args, state, control, logs=None, **kw):
            if not logs:
                return
            if "loss" in logs:
                self.losses.append(float(logs["loss"]))
            if progress:  # the trainer's whole log dict (loss, grad_norm, learning_rate, KTO rewards ...)
                scalars = {k: float(v) for k, v in logs.items()
                           if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "step"}
                if scalars:
                    progress({"step": state.global_step, **scalars})

    return CB()


def _count_tokens(dataset) -> int:
    total = 0
    for row in dataset:
        if "input_ids" in row:
            total += len(row["input_ids"])
        elif "prompt_input_ids" in row:
            total += len(row["prompt_input_ids"]) + len(row.get("completion_input_ids", []))
    return total


def _tokens_seen(dataset, n_rows: int, train: TrainSpec) -> int:
    """Tokens the optimiser will see: every epoch's, capped by ``max_steps`` (SFT and KTO alike)."""
    per_epoch = _count_tokens(dataset)
    tokens = per_epoch * max(1, math.ceil(train.epochs))
    if train.max_steps > 0:
        per_step = train.batch_size * train.grad_accum
        tokens = min(tokens, int(per_epoch / max(1, n_rows) * per_step * train.max_steps))
    return tokens


def train_sft(chat_model, rows: Sequence[dict], lora: LoraSpec, train: TrainSpec, output_dir: str | Path,
              seed: int = 0, progress: Callable[[dict], None] | None = None) -> TrainResult:
    """LoRA SFT of ``chat_model`` on prompt/completion rows; saves the adapter and returns a TrainResult.

    ``rows``: ``{"prompt": [msgs], "completion": [assistant msg]}`` (see data.mixing.to_prompt_completion).
    The base weights are untouched: the adapter is unloaded from the model after saving.
    """
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    output_dir = Path(output_dir)
    on_gpu = torch.cuda.is_available() and chat_model.device.type == "cuda"
    bf16 = on_gpu and torch.cuda.is_bf16_supported()
    args = SFTConfig(
        **_common_args(train, output_dir / "trainer", seed, len(rows), on_gpu, bf16),
        max_length=train.max_length,
        completion_only_loss=True,
        packing=False,
        dataset_num_proc=None,
    )
    ds = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    cb = _make_progress_callback(progress)
    trainer = SFTTrainer(model=chat_model.model, args=args, train_dataset=ds,
                         processing_class=chat_model.tokenizer, peft_config=get_peft_config(lora), callbacks=[cb])
    tokens = _tokens_seen(trainer.train_dataset, len(rows), train)
    t0 = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - t0
    return _finish(trainer, chat_model, output_dir, out, tokens, seconds, cb.losses)


def _finish(trainer, chat_model, output_dir: Path, out, tokens: int, seconds: float, losses: list[float]) -> TrainResult:
    adapter_dir = output_dir / "adapter"
    trainer.model.save_pretrained(str(adapter_dir))
    chat_model.tokenizer.save_pretrained(str(adapter_dir))
    steps = int(trainer.state.global_step)
    (adapter_dir / "emd_train.json").write_text(json.dumps({"steps": steps, "train_loss": out.training_loss,
                                                            "losses": losses}))
    # Give the caller back a clean base model: later evaluations load the adapter explicitly.
    chat_model.release_trained(trainer.model)
    return TrainResult(adapter_dir=adapter_dir, steps=steps, train_loss=float(out.training_loss), tokens=tokens,
                       seconds=seconds, losses=losses)


def train_kto(chat_model, rows: Sequence[dict], lora: LoraSpec, train: TrainSpec, output_dir: str | Path,
              seed: int = 0, beta: float = 0.1, progress: Callable[[dict], None] | None = None) -> TrainResult:
    """LoRA KTO on rows ``{"prompt": [msgs], "completion": [assistant msg], "label": bool}``.

    Desirable (label True) = top-k trajectories, undesirable = bottom-k. With peft, KTO uses the
    adapter-disabled model as its reference, so no second copy of the weights is held.
    """
    import torch
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    output_dir = Path(output_dir)
    on_gpu = torch.cuda.is_available() and chat_model.device.type == "cuda"
    bf16 = on_gpu and torch.cuda.is_bf16_supported()
    n_pos = sum(1 for r in rows if r["label"])
    n_neg = len(rows) - n_pos
    if n_pos == 0 or n_neg == 0:
        from .errors import ConfigError

        raise ConfigError(f"KTO needs desirable and undesirable rows; got {n_pos} desirable, {n_neg} undesirable")
    args = KTOConfig(
        **_common_args(train, output_dir / "trainer", seed, len(rows), on_gpu, bf16),
        max_length=train.max_length,
        beta=beta,
        # Balance the loss when classes differ in size (KTO paper's recommendation).
        desirable_weight=1.0,
        undesirable_weight=n_pos / n_neg if n_neg else 1.0,
    )
    ds = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"], "label": bool(r["label"])}
                            for r in rows])
    cb = _make_progress_callback(progress)
    trainer = KTOTrainer(model=chat_model.model, args=args, train_dataset=ds, processing_class=chat_model.tokenizer,
                         peft_config=get_peft_config(lora), callbacks=[cb])
    tokens = _tokens_seen(trainer.train_dataset, len(rows), train)
    t0 = time.perf_counter()
    out = trainer.train()
    seconds = time.perf_counter() - t0
    return _finish(trainer, chat_model, output_dir, out, tokens, seconds, cb.losses)
