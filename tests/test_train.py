"""One real, tiny LoRA training run on the embedded model."""

import json

import pytest
import torch
from safetensors.torch import load_file

from emd.config import LoraSpec, TrainSpec
from emd.train import get_peft_config, train_sft


def test_get_peft_config_maps_every_field():
    cfg = get_peft_config(LoraSpec(r=4, alpha=8, dropout=0.1, rslora=True, target_modules="q_proj,down_proj"))
    assert (cfg.r, cfg.lora_alpha, cfg.lora_dropout, cfg.use_rslora) == (4, 8, 0.1, True)
    assert set(cfg.target_modules) == {"q_proj", "down_proj"}


@pytest.mark.slow
def test_tiny_sft_run_changes_adapter_and_keeps_base(embedded_model, tmp_path):
    rows = [{"prompt": [{"role": "user", "content": f"Repeat the code word {i}."}],
             "completion": [{"role": "assistant", "content": f"The code word is zebra-{i}."}]} for i in range(8)]
    probe = embedded_model.tokenizer("Hello there", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        before = embedded_model.model(probe).logits.clone()
    res = train_sft(embedded_model, rows, LoraSpec(r=4, alpha=8), TrainSpec(batch_size=4, max_steps=2,
                    learning_rate=1e-3), tmp_path, seed=0)
    assert res.steps == 2 and res.tokens > 0 and len(res.losses) == 2
    weights = load_file(str(res.adapter_dir / "adapter_model.safetensors"))
    lora_b = [v for k, v in weights.items() if "lora_B" in k]
    # peft initialises lora_B to zero: any non-zero entry means training moved the adapter
    assert lora_b and any(float(v.abs().max()) > 0 for v in lora_b)
    targets = {k.split(".")[-3] for k in weights if "lora_A" in k}
    assert {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"} <= targets
    assert json.loads((res.adapter_dir / "adapter_config.json").read_text())["r"] == 4
    # the base model handed back is clean (adapter unloaded)
    with torch.inference_mode():
        after = embedded_model.model(probe).logits
    assert torch.allclose(before, after, atol=1e-5)
