"""Multi-round self-training: how round r+1 trains on top of the round-r model.

trl refuses to put a new LoRA on a model that already carries one, and asks for the old adapter to be
merged first; so round r+1 trains a fresh LoRA on the base weights with the round-r model merged in
(for KTO this makes the round-r model the reference, as in iterative preference training).

To keep every round's model usable on the *clean* base (evaluation, the registry, ``emd evaluate``),
the rounds' adapters are then **concatenated** into one composite adapter: two LoRAs with deltas
``s1 B1 A1`` and ``s2 B2 A2`` equal one LoRA of rank ``r1 + r2`` with ``A = [A1; A2]`` and
``B = [B1 s1/s, B2 s2/s]``, where ``s`` is the composite's own scaling. This is exact (the tests
compare logits). The composite's rank grows by ``lora_r`` per round, which stays small for the few
rounds this experiment runs.

Memory: one copy of the base weights. Merging changes them in place, so after training a round >= 2
the caller reloads the base model (a few seconds for the embedded model) instead of keeping a second
copy.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path
from typing import Sequence

from ..errors import ModelError

WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"


def _scaling(cfg: dict) -> float:
    r, alpha = int(cfg["r"]), float(cfg["lora_alpha"])
    return alpha / math.sqrt(r) if cfg.get("use_rslora") else alpha / r


def adapter_digest(adapter_dir: str | Path) -> str:
    """sha256 of an adapter's config and weights (identifies the model that collects trajectories)."""
    d = Path(adapter_dir)
    h = hashlib.sha256()
    for name in (CONFIG, WEIGHTS):
        p = d / name
        if not p.is_file():
            raise ModelError(f"adapter folder {d} has no {name}")
        h.update(p.read_bytes())
    return h.hexdigest()


def compose_adapters(adapter_dirs: Sequence[str | Path], out_dir: str | Path) -> Path:
    """Write one LoRA adapter equal to applying ``adapter_dirs`` in sequence (their deltas summed)."""
    from safetensors.torch import load_file, save_file

    dirs = [Path(d) for d in adapter_dirs]
    if not dirs:
        raise ModelError("compose_adapters needs at least one adapter folder")
    out = Path(out_dir)
    if len(dirs) == 1:
        if out.exists():
            shutil.rmtree(out)
        shutil.copytree(dirs[0], out)
        return out
    cfgs = [json.loads((d / CONFIG).read_text()) for d in dirs]
    weights = [load_file(str(d / WEIGHTS)) for d in dirs]
    keys = set(weights[0])
    for d, w, c in zip(dirs, weights, cfgs):
        if set(w) != keys:
            raise ModelError(f"adapter {d} adapts different modules than {dirs[0]}; cannot compose")
        if c.get("rank_pattern") or c.get("alpha_pattern"):
            raise ModelError(f"adapter {d} uses per-module ranks; cannot compose")
    comp_cfg = dict(cfgs[0])
    comp_cfg["r"] = sum(int(c["r"]) for c in cfgs)
    comp_cfg["lora_alpha"] = cfgs[0]["lora_alpha"]
    s = _scaling(comp_cfg)
    scales = [_scaling(c) for c in cfgs]
    merged = {}
    for k in sorted(keys):
        if ".lora_A." in k:
            merged[k] = torch_cat([w[k] for w in weights], dim=0)
        elif ".lora_B." in k:
            merged[k] = torch_cat([w[k] * (si / s) for w, si in zip(weights, scales)], dim=1)
        else:
            raise ModelError(f"adapter weight {k} is neither lora_A nor lora_B; cannot compose")
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    save_file({k: v.contiguous() for k, v in merged.items()}, str(out / WEIGHTS))
    (out / CONFIG).write_text(json.dumps(comp_cfg, indent=2))
    (out / "emd_composite.json").write_text(json.dumps({"parts": [str(d) for d in dirs],
                                                        "ranks": [int(c["r"]) for c in cfgs]}, indent=2))
    return out


def torch_cat(tensors, dim: int):
    """torch.cat (imported lazily so this module stays cheap to import)."""
    import torch

    return torch.cat(tensors, dim=dim)


def merge_adapter(chat_model, adapter_dir: str | Path) -> None:
    """Merge ``adapter_dir`` into ``chat_model``'s base weights in place (the caller reloads later).

    Goes through :meth:`emd.models.ChatModel.merge_adapter`, which records the merge, so
    ``chat_model.clean`` is False until the base is reloaded.
    """
    chat_model.merge_adapter(adapter_dir)
