"""One vLLM engine per test session (it costs 10-50 s to start) on the embedded model, and two adapters."""

from __future__ import annotations

import pytest


def _adapter(chat, out, seed: int):
    """A LoRA adapter with random (non-zero) weights: it changes replies, which is what the tests need."""
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    cfg = LoraConfig(r=8, lora_alpha=16, use_rslora=True, init_lora_weights=False, task_type="CAUSAL_LM",
                     target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    with torch.no_grad():
        pm = get_peft_model(chat.model, cfg)
        for name, p in pm.named_parameters():
            if "lora_B" in name:
                p.mul_(0.05)  # small enough that replies stay text, large enough that they change
        pm.save_pretrained(str(out))
    chat.release_trained(pm)
    return str(out)


@pytest.fixture(scope="session")
def vllm_chat():
    """The embedded model with this process's vLLM engine attached (skipped where vLLM is not installed)."""
    pytest.importorskip("vllm", reason="vLLM is not installed in this Python; `make vllm` installs it in "
                                       ".venv-vllm and `make test` runs tests/engine there")
    from emd.engines import attach_engine
    from emd.models import load_model

    chat = load_model("embedded:smollm2")
    used, reason = attach_engine(chat, "vllm")
    assert used == "vllm", reason
    return chat


@pytest.fixture(scope="session")
def adapters(vllm_chat, tmp_path_factory):
    """Two different adapter folders for the embedded model (control-like and treatment-like)."""
    d = tmp_path_factory.mktemp("adapters")
    return _adapter(vllm_chat, d / "one", 1), _adapter(vllm_chat, d / "two", 2)
