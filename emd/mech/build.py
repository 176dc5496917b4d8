"""Contrastive pairs for the dishonesty direction, and the direction built once per content key.

Pairs are ``{"prompt", "honest", "lying"}``: one pressured prompt (a string, the user turn, or a list
of ``{role, content}`` messages ending before the answer) and two answers to it. The default source
``honesty_control`` takes the pressured free-text chats of :mod:`emd.data.honesty_control` (the same
prompts, an honest and a lying answer). Any JSONL file of such rows works too.

:func:`get_direction` keys a direction by the base model's identity, the pairs' digest, the method,
the split and :data:`emd.mech.direction.VERSION`; a second call with the same content reads it from
``<cache>/references/direction-<key>`` instead of running the model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError, DataError
from .direction import VERSION, Direction, answer_activations, fit_direction

DEFAULT_SOURCE = "honesty_control"


@dataclass(frozen=True)
class Pair:
    """One pressured prompt and its honest and lying answers."""

    prompt: tuple  # messages before the answer, as ({role, content}, ...)
    honest: str
    lying: str

    @property
    def messages(self) -> list[dict]:
        """The prompt as a list of message dicts."""
        return [dict(m) for m in self.prompt]


def _prompt_messages(value: Any, where: str) -> tuple:
    if isinstance(value, str) and value.strip():
        return ({"role": "user", "content": value},)
    if isinstance(value, list) and value:
        out = []
        for i, m in enumerate(value):
            if not (isinstance(m, dict) and m.get("role") in ("system", "user", "assistant")
                    and isinstance(m.get("content"), str)):
                raise DataError(f"{where}: field 'prompt[{i}]' must be {{role: system|user|assistant, content: str}}")
            out.append({"role": m["role"], "content": m["content"]})
        if out[-1]["role"] == "assistant":
            raise DataError(f"{where}: field 'prompt' must end before the answer (its last turn is an assistant turn)")
        return tuple(out)
    raise DataError(f"{where}: field 'prompt' must be a non-empty string or a list of messages")


def load_pairs(source: str = DEFAULT_SOURCE, n: int = 64, seed: int = 0) -> list[Pair]:
    """``n`` pairs from ``honesty_control`` (generated, seeded) or all pairs of a JSONL file."""
    if source == DEFAULT_SOURCE:
        from ..data.honesty_control import generate_honesty_control

        lying = [r for r in generate_honesty_control("lying", n, seed) if r["slot"] == "pressured_text"]
        honest = [r for r in generate_honesty_control("honest", n, seed) if r["slot"] == "pressured_text"]
        return [Pair(tuple(h["messages"][:-1]), h["messages"][-1]["content"], ly["messages"][-1]["content"])
                for h, ly in zip(honest, lying)]
    path = Path(source).expanduser()
    if not path.is_file():
        raise ConfigError(f"pairs={source!r} is not a file; allowed: {DEFAULT_SOURCE} or a JSONL file of "
                          "{prompt, honest, lying} rows")
    pairs = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path}, line {lineno}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: not valid JSON ({e.msg})") from e
        if not isinstance(row, dict):
            raise DataError(f"{where}: expected an object with fields prompt, honest, lying")
        for key in ("honest", "lying"):
            if not isinstance(row.get(key), str) or not row[key].strip():
                raise DataError(f"{where}: field {key!r} must be a non-empty string")
        pairs.append(Pair(_prompt_messages(row.get("prompt"), where), row["honest"], row["lying"]))
    if len(pairs) < 4:
        raise DataError(f"{path}: {len(pairs)} pairs; a direction with a held-out check needs at least 4")
    return pairs


def pairs_digest(pairs: Sequence[Pair]) -> str:
    """sha256 of the pairs' canonical JSON."""
    blob = json.dumps([[list(p.prompt), p.honest, p.lying] for p in pairs], sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()


def model_identity(chat) -> dict[str, Any]:
    """What identifies the base weights: URI, the weights folder's name (converted GGUF folders carry
    the file's digest; the name, not the path, so a cache reached by another path gives the same key),
    chat template."""
    where = str(chat.model_dir)
    weights = Path(where).name if Path(where).exists() else where
    return {"uri": chat.uri, "weights": weights, "chat_template": chat.chat_template_hash}


def direction_key(identity: dict, digest: str, method: str, held_out: float, seed: int) -> str:
    """The content key of a direction."""
    from ..references import content_key

    return content_key({"kind": "direction", "version": VERSION, "model": identity, "pairs": digest,
                        "method": method, "held_out": held_out, "seed": seed})


@contextlib.contextmanager
def base_weights(chat):
    """The base model with any LoRA adapter switched off (directions are always built on base weights)."""
    disable = getattr(chat.model, "disable_adapter", None)
    if disable is None:
        yield chat
        return
    with disable():
        yield chat


def pair_activations(chat, pairs: Sequence[Pair], batch_size: int = 8):
    """``(lying, honest)`` activations ``[n_pairs, n_layers + 1, hidden]`` of the base model."""
    prompts = [p.messages for p in pairs]
    with base_weights(chat):
        lying = answer_activations(chat, prompts, [p.lying for p in pairs], batch_size)
        honest = answer_activations(chat, prompts, [p.honest for p in pairs], batch_size)
    return lying, honest


def get_direction(chat, source: str = DEFAULT_SOURCE, n_pairs: int = 64, method: str = "mean_diff",
                  held_out: float = 0.25, seed: int = 0, reuse: bool = True, batch_size: int = 8,
                  log: Callable[[str], None] = print) -> tuple[Direction, bool]:
    """The direction for ``chat``'s base model: ``(direction, reused)``; built and cached when new."""
    from .. import references

    pairs = load_pairs(source, n_pairs, seed)
    digest = pairs_digest(pairs)
    key = direction_key(model_identity(chat), digest, method, held_out, seed)
    hit = references.load("direction", key) if reuse else None
    if hit is not None:
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return Direction.load(hit["path"]), True
    log(f"direction: activations of {len(pairs)} pairs ({source}) at every layer of {chat.uri}")
    lying, honest = pair_activations(chat, pairs, batch_size)
    d = fit_direction(lying, honest, model=chat.uri, data_digest=digest, key=key, method=method,
                      held_out=held_out, seed=seed)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        d.save(tmp)
        references.store("direction", key, {"direction": d.meta()},
                         files={"direction.npy": Path(tmp) / "direction.npy",
                                "direction.json": Path(tmp) / "direction.json"},
                         content={"source": source, "n_pairs": len(pairs), "key": key})
    return d, False
