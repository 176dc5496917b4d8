"""Multi-round adapters: composing two LoRAs equals merging the first and applying the second."""

from __future__ import annotations

import json

import pytest

from emd.errors import ModelError
from emd.interaction.adapters import adapter_digest, compose_adapters, merge_adapter


def _random_adapter(chat, out, seed: int, r: int, rslora: bool):
    import torch
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    cfg = LoraConfig(r=r, lora_alpha=2 * r, use_rslora=rslora, init_lora_weights=False, task_type="CAUSAL_LM",
                     target_modules=["q_proj", "v_proj", "up_proj"])
    pm = get_peft_model(chat.model, cfg)
    pm.save_pretrained(str(out))
    chat.model = pm.unload()
    return out


@pytest.mark.parametrize("rslora", [True, False])
def test_composite_equals_merge_then_apply(tmp_path, rslora):
    import torch
    from peft import PeftModel

    from emd.models import load_model

    chat = load_model("random:tiny", device="cpu")
    a1 = _random_adapter(chat, tmp_path / "a1", 1, 4, rslora)
    a2 = _random_adapter(chat, tmp_path / "a2", 2, 2, rslora)
    comp = compose_adapters([a1, a2], tmp_path / "comp")
    cfg = json.loads((comp / "adapter_config.json").read_text())
    assert cfg["r"] == 6 and (comp / "emd_composite.json").is_file()
    ids = torch.tensor([[1, 5, 9, 14, 3, 7]])
    with torch.inference_mode():
        base = chat.model(input_ids=ids).logits
        pm = PeftModel.from_pretrained(chat.model, str(comp))
        via_comp = pm(input_ids=ids).logits
        chat.model = pm.unload()
        assert torch.allclose(chat.model(input_ids=ids).logits, base)  # unload left the base clean
        merge_adapter(chat, a1)  # what round 2 trains on
        pm = PeftModel.from_pretrained(chat.model, str(a2))
        via_merge = pm(input_ids=ids).logits
    assert not torch.allclose(via_comp, base, atol=1e-3)
    assert torch.allclose(via_comp, via_merge, atol=1e-4, rtol=1e-4)
    assert adapter_digest(a1) != adapter_digest(a2) and adapter_digest(a1) == adapter_digest(a1)
    single = compose_adapters([a1], tmp_path / "single")
    assert adapter_digest(single) == adapter_digest(a1)
    with pytest.raises(ModelError, match="no adapter_config.json"):
        adapter_digest(tmp_path)
