"""The training-scale keys: quantized loading, device placement, attention kernel, optimizer, schedule.

Validation (called from the ``__post_init__`` of :class:`emd.config.ModelSpec` / ``TrainSpec``) runs
before any model loads, and every error names the key and its allowed values. :func:`load_kwargs`
turns the model keys into ``from_pretrained`` arguments (the one place a ``BitsAndBytesConfig`` is
built). See docs/training.md.
"""

from __future__ import annotations

import importlib.util
import json
from typing import Any

from .errors import ConfigError

ATTN_IMPLEMENTATIONS = ("eager", "sdpa", "flash_attention_2", "flash_attention_3", "flex_attention")
BNB_OPTIMS = ("adamw_8bit", "ademamix_8bit", "lion_8bit", "lion_32bit")
DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential", "cpu", "cuda")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def check_model_keys(spec) -> None:
    """ConfigError for a bad ``load_in_4bit`` / ``load_in_8bit`` / ``device_map`` / ``attn_implementation``."""
    if spec.load_in_4bit and spec.load_in_8bit:
        raise ConfigError("load_in_4bit and load_in_8bit are both true; allowed: at most one of them")
    for key in ("load_in_4bit", "load_in_8bit"):
        if not getattr(spec, key):
            continue
        if spec.model.startswith(("embedded:", "gguf:", "random:")):
            raise ConfigError(f"{key}=true with model={spec.model}: GGUF-converted and random: models are built "
                              "in float, not loaded from weights; allowed: an hf: model (save a random: model with "
                              "save_pretrained and load it as hf:<folder>)")
        check_quantized_loading(key)
    if device_map_value(spec.device_map) is not None and spec.model.startswith("random:"):
        raise ConfigError(f"device_map={spec.device_map!r} with model={spec.model}: a random: model is built in "
                          "memory, not loaded; allowed: empty")
    attn = spec.attn_implementation
    if attn and attn not in ATTN_IMPLEMENTATIONS and "/" not in attn:
        raise ConfigError(f"attn_implementation={attn!r}; allowed: {', '.join(ATTN_IMPLEMENTATIONS)}, a hub kernel "
                          "id (org/name), or empty for transformers' default")
    if attn.startswith("flash_attention") and importlib.util.find_spec("flash_attn") is None and attn.endswith("2"):
        raise ConfigError(f"attn_implementation={attn} needs the flash-attn package, which is not installed; "
                          "allowed: sdpa, eager, or install flash-attn")


def check_quantized_loading(key: str = "load_in_4bit") -> None:
    """ConfigError naming ``key`` unless bitsandbytes is installed and a CUDA GPU is visible."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError(f"{key}=true needs bitsandbytes, which is not installed; allowed: install it with "
                          f"pip install 'emd[quant]', or set {key}=false")
    if not _cuda_available():
        raise ConfigError(f"{key}=true needs a CUDA GPU (bitsandbytes kernels); none is visible here; "
                          f"allowed: {key}=false on this machine")


def device_map_value(raw: str) -> Any:
    """The parsed ``device_map`` key: None (empty), a name, ``cuda:N``, or a JSON mapping."""
    raw = (raw or "").strip()
    if not raw:
        return None
    if raw.startswith("{"):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ConfigError(f"device_map={raw!r} is not JSON ({e}); allowed: {', '.join(DEVICE_MAPS)}, cuda:N, "
                              "or a JSON object of module -> device") from e
        if not isinstance(value, dict):
            raise ConfigError(f"device_map={raw!r}; allowed: a JSON object of module -> device")
        return value
    if raw in DEVICE_MAPS or (raw.startswith("cuda:") and raw[5:].isdigit()):
        return raw
    raise ConfigError(f"device_map={raw!r}; allowed: {', '.join(DEVICE_MAPS)}, cuda:N, a JSON object, or empty")


def check_train_keys(spec) -> None:
    """ConfigError for bad TrainSpec values (numbers, optimizer and scheduler names, checkpoints)."""
    if spec.learning_rate <= 0:
        raise ConfigError(f"learning_rate={spec.learning_rate}; allowed: > 0")
    if spec.batch_size < 1 or spec.grad_accum < 1:
        raise ConfigError("batch_size and grad_accum must be >= 1")
    if spec.max_steps == 0 or spec.max_steps < -1:
        raise ConfigError(f"max_steps={spec.max_steps}; allowed: -1 (no cap) or >= 1")
    if spec.max_length < 16:
        raise ConfigError(f"max_length={spec.max_length}; allowed: >= 16")
    if not (spec.epochs > 0 and spec.epochs == spec.epochs and spec.epochs != float("inf")):
        raise ConfigError(f"epochs={spec.epochs}; allowed: a number > 0")
    if not 0 <= spec.warmup_ratio < 1:
        raise ConfigError(f"warmup_ratio={spec.warmup_ratio}; allowed: 0 <= warmup_ratio < 1")
    if spec.save_steps < 0:
        raise ConfigError(f"save_steps={spec.save_steps}; allowed: 0 (no checkpoints) or an integer >= 1")
    # The enums live in transformers (heavy to import): only look when a non-default value is asked for.
    if spec.lr_scheduler_type != "linear":
        from transformers.trainer_utils import SchedulerType

        allowed = [s.value for s in SchedulerType]
        if spec.lr_scheduler_type not in allowed:
            raise ConfigError(f"lr_scheduler_type={spec.lr_scheduler_type!r}; allowed: {', '.join(allowed)}")
    if spec.optim != "adamw_torch":
        from transformers.training_args import OptimizerNames

        allowed = [o.value for o in OptimizerNames]
        if spec.optim not in allowed:
            raise ConfigError(f"optim={spec.optim!r}; allowed: {', '.join(allowed)}")
        bnb = "bnb" in spec.optim or spec.optim.startswith("paged_") or spec.optim in BNB_OPTIMS
        if bnb and importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(f"optim={spec.optim} needs bitsandbytes, which is not installed; allowed: "
                                  "adamw_torch, adamw_torch_fused, adafactor, or pip install 'emd[quant]'")


def load_kwargs(spec, torch_dtype) -> dict[str, Any]:
    """``from_pretrained`` keywords for the model keys of ``spec`` (a ModelSpec-like object).

    Quantized or device-mapped models are placed by transformers; the caller must not move them."""
    out: dict[str, Any] = {}
    if spec.attn_implementation:
        out["attn_implementation"] = spec.attn_implementation
    if spec.load_in_4bit or spec.load_in_8bit:
        import torch
        from transformers import BitsAndBytesConfig

        from .distributed import local_device

        compute = torch_dtype if torch_dtype in (torch.bfloat16, torch.float16) else torch.bfloat16
        out["quantization_config"] = (
            BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                               bnb_4bit_compute_dtype=compute)
            if spec.load_in_4bit else BitsAndBytesConfig(load_in_8bit=True))
        # Under DDP each rank holds its own quantized copy on its own GPU.
        out["device_map"] = {"": str(local_device())}
    device_map = device_map_value(spec.device_map)
    if device_map is not None:
        out["device_map"] = device_map
    return out


def quantization_tag(spec) -> str:
    """``nf4`` / ``int8`` / ``none``: how the base weights were loaded (part of a model's identity)."""
    return "nf4" if spec.load_in_4bit else "int8" if spec.load_in_8bit else "none"
