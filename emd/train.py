"""LoRA fine-tuning: SFT (trl SFTTrainer) and KTO (trl KTOTrainer), both through peft.

Data arrives in trl's conversational prompt/completion form, so the loss covers the assistant's
completion only (SmolLM2's template has no generation markers, so ``assistant_only_loss`` on a
``messages`` dataset cannot work there). CPU traps measured here: bf16 must be off (the default
bf16 raises; use_cpu + bf16 runs 13x slower) and gradient checkpointing is off unless asked for
(``gradient_checkpointing``). Under ``accelerate launch`` the Trainer runs DDP across the ranks
(:mod:`emd.distributed` brings the other ranks to each training). Checkpoints and resume:
``save_steps`` and :func:`last_checkpoint`.
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
    losses: list[float] = field(default_factory=list)  # the loss of each step logged by this process
    resumed_from_step: int = 0  # the checkpoint's step when resumed, else 0

    @property
    def tokens_per_s(self) -> float:
        """Training throughput over non-padding tokens."""
        return self.tokens / self.seconds if self.seconds > 0 else float("nan")


def _common_args(train: TrainSpec, output_dir: Path, seed: int, n_rows: int, on_gpu: bool, bf16: bool) -> dict:
    from .distributed import world_size

    steps_per_epoch = max(1, math.ceil(n_rows / (train.batch_size * train.grad_accum * world_size())))
    return dict(
        output_dir=str(output_dir),
        per_device_train_batch_size=train.batch_size,
        gradient_accumulation_steps=train.grad_accum,
        learning_rate=train.learning_rate,
        num_train_epochs=train.epochs,
        max_steps=train.max_steps,
        warmup_steps=int(train.warmup_ratio * steps_per_epoch * train.epochs),
        lr_scheduler_type=train.lr_scheduler_type,
        optim=train.optim,
        logging_steps=1,
        # Checkpoints hold adapter, optimizer, scheduler and RNG states: enough to resume bit-for-bit.
        save_strategy="steps" if train.save_steps > 0 else "no",
        save_steps=train.save_steps if train.save_steps > 0 else 500,
        save_total_limit=2 if train.save_steps > 0 else None,
        report_to="none",  # emd logs to MLflow itself (tracking.py); trl's callback would open its own run
        seed=seed,
        data_seed=seed,
        bf16=bf16,
        fp16=False,
        use_cpu=not on_gpu,
        # Off by default: slower on CPU and pointless for a LoRA on small models; on for 7-32B on one GPU.
        gradient_checkpointing=train.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False} if train.gradient_checkpointing else None,
        # Every LoRA parameter takes part in every step, so DDP need not search for unused ones.
        ddp_find_unused_parameters=False if world_size() > 1 else None,
        dataloader_num_workers=0,
        disable_tqdm=False,
        remove_unused_columns=True,
    )


def last_checkpoint(folder: str | Path | None) -> Path | None:
    """The newest complete ``checkpoint-<step>`` folder under ``folder`` (None if there is none).

    Complete = its ``trainer_state.json`` exists (the Trainer writes it after the weights and optimizer)."""
    if folder is None or not Path(folder).is_dir():
        return None
    done = [p for p in Path(folder).glob("checkpoint-*") if p.name.split("-")[-1].isdigit()
            and (p / "trainer_state.json").is_file()]
    return max(done, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _run(trainer, train: TrainSpec, rows: int, checkpoint_dir: Path | None, resume: bool):
    """Train (from the last checkpoint when resuming); returns (output, tokens, seconds, resumed step)."""
    # Rows of the prepared dataset (packed sequences when packing; fully masked rows dropped).
    tokens = _tokens_seen(trainer.train_dataset, len(trainer.train_dataset) or rows, train)
    start = last_checkpoint(checkpoint_dir) if resume else None
    t0 = time.perf_counter()
    out = trainer.train(resume_from_checkpoint=str(start) if start else None)
    seconds = time.perf_counter() - t0
    resumed = int(start.name.split("-")[-1]) if start else 0
    if resumed and trainer.state.global_step:  # only the steps run now count towards throughput
        tokens = int(tokens * (1 - resumed / trainer.state.global_step))
    return out, tokens, seconds, resumed


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
        from .distributed import world_size

        per_step = train.batch_size * train.grad_accum * world_size()
        tokens = min(tokens, int(per_epoch / max(1, n_rows) * per_step * train.max_steps))
    return tokens


def train_sft(chat_model, rows: Sequence[dict], lora: LoraSpec, train: TrainSpec, output_dir: str | Path,
              seed: int = 0, progress: Callable[[dict], None] | None = None, checkpoint_dir: str | Path | None = None,
              resume: bool = False) -> TrainResult:
    """LoRA SFT of ``chat_model`` on prompt/completion rows; saves the adapter and returns a TrainResult.

    ``rows``: ``{"prompt": [msgs], "completion": [assistant msg]}`` (see data.mixing.to_prompt_completion).
    The base weights are untouched: the adapter is unloaded from the model after saving. With
    ``train.save_steps`` checkpoints go to ``checkpoint_dir``; ``resume`` continues from the last one.
    ``train.packing``: padding-free best-fit packing (trl), the loss still on completion tokens only.
    """
    trainer, cb = build_sft_trainer(chat_model, rows, lora, train, Path(output_dir), seed, progress, checkpoint_dir)
    out, tokens, seconds, resumed = _run(trainer, train, len(rows), checkpoint_dir, resume)
    return _finish(trainer, chat_model, Path(output_dir), out, tokens, seconds, cb.losses, resumed)


def build_sft_trainer(chat_model, rows: Sequence[dict], lora: LoraSpec, train: TrainSpec, output_dir: Path,
                      seed: int = 0, progress: Callable[[dict], None] | None = None,
                      checkpoint_dir: str | Path | None = None):
    """The SFTTrainer :func:`train_sft` runs (and its progress callback), not yet trained."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    on_gpu = torch.cuda.is_available() and chat_model.device.type == "cuda"
    bf16 = on_gpu and torch.cuda.is_bf16_supported()
    args = SFTConfig(
        **_common_args(train, Path(checkpoint_dir or output_dir / "trainer"), seed, len(rows), on_gpu, bf16),
        max_length=train.max_length,
        completion_only_loss=True,
        packing=train.packing,
        packing_strategy="bfd",
        dataset_num_proc=None,
    )
    ds = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    cb = _make_progress_callback(progress)
    trainer = SFTTrainer(model=chat_model.model, args=args, train_dataset=ds,
                         processing_class=chat_model.tokenizer, peft_config=get_peft_config(lora), callbacks=[cb])
    return trainer, cb


def _finish(trainer, chat_model, output_dir: Path, out, tokens: int, seconds: float, losses: list[float],
            resumed: int = 0) -> TrainResult:
    adapter_dir = output_dir / "adapter"
    trainer.model.save_pretrained(str(adapter_dir))
    chat_model.tokenizer.save_pretrained(str(adapter_dir))
    steps = int(trainer.state.global_step)
    (adapter_dir / "emd_train.json").write_text(json.dumps({"steps": steps, "train_loss": out.training_loss,
                                                            "losses": losses, "resumed_from_step": resumed}))
    # Give the caller back a clean base model: later evaluations load the adapter explicitly.
    chat_model.release_trained(trainer.model)
    return TrainResult(adapter_dir=adapter_dir, steps=steps, train_loss=float(out.training_loss), tokens=tokens,
                       seconds=seconds, losses=losses, resumed_from_step=resumed)


def train_kto(chat_model, rows: Sequence[dict], lora: LoraSpec, train: TrainSpec, output_dir: str | Path,
              seed: int = 0, beta: float = 0.1, progress: Callable[[dict], None] | None = None,
              checkpoint_dir: str | Path | None = None, resume: bool = False) -> TrainResult:
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
        **_common_args(train, Path(checkpoint_dir or output_dir / "trainer"), seed, len(rows), on_gpu, bf16),
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
    out, tokens, seconds, resumed = _run(trainer, train, len(rows), checkpoint_dir, resume)
    return _finish(trainer, chat_model, output_dir, out, tokens, seconds, cb.losses, resumed)


def run_training(chat_model, method: str, rows: Sequence[dict], lora: LoraSpec, train: TrainSpec,
                 output_dir: str | Path, seed: int = 0, progress: Callable[[dict], None] | None = None,
                 checkpoint_dir: str | Path | None = None, resume: bool = False) -> TrainResult:
    """:func:`train_sft` (``method="sft"``) or :func:`train_kto` (``"kto"``) with the same arguments."""
    fn = train_sft if method == "sft" else train_kto
    return fn(chat_model, rows, lora, train, output_dir, seed=seed, progress=progress, checkpoint_dir=checkpoint_dir,
              resume=resume)
