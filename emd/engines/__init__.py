"""Generation engines behind :class:`emd.models.ChatModel`: ``hf`` (transformers ``generate``) or ``vllm``.

``--engine hf|vllm|auto`` picks one for every evaluator. ``auto`` takes vLLM where it is installed and
starts and is the faster engine (not for adapters on a CPU), else hf, and says why (``emd.engine`` / ``emd.engine_reason`` tags). With an engine attached a
ChatModel keeps its interface (``generate_detailed``, ``option_logprobs``, ``adapter``): the calls are
served by one vLLM engine per process and base model, the adapter in use sent per request as a
``LoRARequest``, so vanilla, control and treatment share the base weights. See docs/engine.md.

Nothing heavy is imported here: choosing and validating an engine must stay instant.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Callable

from ..errors import ConfigError, ModelError

ENGINES = ("hf", "vllm", "auto")


def validate_engine(name: str) -> None:
    """A clear error for an unknown engine name (before any model loads)."""
    if name not in ENGINES:
        raise ConfigError(f"engine={name!r}; allowed: {', '.join(ENGINES)}")


def vllm_missing() -> str | None:
    """Why vLLM cannot be used in this Python (``None`` when it is importable)."""
    if importlib.util.find_spec("vllm") is None:
        return "vllm is not installed in this Python (make vllm installs it in .venv-vllm)"
    return None


# Measured (docs/engine.md): with LoRA layers vLLM's CPU backend generates ~1.1x hf's speed, scores slower,
# and `benchmarks/main_job.py --args "--engine auto"` had not finished its cold run after 1000 s (hf: 344 s).
CPU_LORA_REASON = ("auto: no GPU, and this run serves adapters: vLLM's CPU LoRA layers are slower than "
                   "transformers + peft (docs/engine.md); --engine vllm uses it anyway")


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def attach_engine(chat: Any, name: str, settings: dict | None = None,
                  log: Callable[[str], None] = print) -> tuple[str, str]:
    """Put the engine ``name`` behind ``chat`` (a ChatModel); returns ``(engine used, reason)``.

    ``hf`` leaves ``chat`` as it is. ``vllm`` starts (or reuses) this process's vLLM engine for
    ``chat``'s base model and fails with :class:`ModelError` when it cannot. ``auto`` tries vLLM and
    falls back to hf with the reason logged; without a GPU it takes hf for runs that serve adapters
    (``settings["enable_lora"]``), where vLLM's CPU LoRA layers are the slower engine.
    """
    validate_engine(name)
    if name == "hf":
        chat.engine = None
        return "hf", "engine=hf"
    missing = vllm_missing()
    if missing:
        if name == "vllm":
            raise ModelError(f"engine=vllm: {missing}; allowed here: engine=hf or engine=auto")
        log(f"engine auto: hf ({missing})")
        return "hf", missing
    if name == "auto" and (settings or {}).get("enable_lora", True) and not _cuda():
        reason = CPU_LORA_REASON
        log(f"engine auto: hf ({reason})")
        chat.engine = None
        return "hf", reason
    from .vllm_engine import shared_engine

    try:
        chat.engine = shared_engine(chat, **(settings or {}))
    except Exception as e:  # noqa: BLE001 -- auto must fall back on whatever stops vLLM starting
        if name == "vllm":
            raise ModelError(f"engine=vllm could not start for {chat.uri}: {type(e).__name__}: {e}") from e
        reason = f"vllm failed to start: {type(e).__name__}: {str(e)[:300]}"
        log(f"engine auto: hf ({reason})")
        chat.engine = None
        return "hf", reason
    reason = "engine=vllm" if name == "vllm" else "auto: vllm installed and started"
    log(f"engine: vllm {chat.engine.describe()}")
    return "vllm", reason
