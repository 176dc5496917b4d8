"""One vLLM engine per process and base model, serving ChatModel's generation and scoring calls.

Requests are built from the HF tokenizer's own token ids (the chat template rendered by
:meth:`emd.models.ChatModel.render`, ``add_special_tokens=False``) and replies are decoded by the same
tokenizer, so both engines see and return exactly the same tokens. Adapters travel per request as
``LoRARequest`` (one id per adapter folder and content), so the base weights are loaded once.

Scoring does not use ``prompt_logprobs``: with ``enable_lora=True`` vLLM 0.32 computes prompt-token
logits through the LoRA logits processor with the *per-request* sampler index (one row per request),
while the hidden states hold one row per prompt token; a step with one request broadcasts and works, a
step with several crashes on CPU (``einsum(): subscript b has size ...``). Instead every scored token
is read at sampling time with ``logprob_token_ids`` (the log-probabilities of chosen token ids at the
next position, from the raw logits): one request per distinct prefix, batched freely, the shared
prompt reused through the prefix cache. See docs/engine.md.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Sequence

from ..errors import ModelError

MAX_SCORED_IDS = 128  # vLLM's cap on logprob_token_ids per request (MAX_LOGPROB_TOKEN_IDS)
_ENGINES: dict[tuple, "VllmEngine"] = {}
ENGINE_DEFAULTS = dict(dtype="auto", tensor_parallel_size=1, gpu_memory_utilization=0.85, max_model_len=0,
                       max_lora_rank=64, kv_cache_gib=0.0, enable_lora=True)


@contextlib.contextmanager
def _engine_env(values: dict[str, str]):
    """Set vLLM's construction-time switches for the duration of the engine start only.

    vLLM reads its in-process mode (``VLLM_ENABLE_V1_MULTIPROCESSING``) and CPU thread binding
    (``VLLM_CPU_OMP_THREADS_BIND``) from the environment alone, once, while the engine is built; no
    engine argument exists for them. A value the user set wins; everything is restored on exit.
    """
    todo = {k: v for k, v in values.items() if k not in os.environ}
    try:
        os.environ.update(todo)
        yield
    finally:
        for k in todo:
            os.environ.pop(k, None)


def _restore_env(before: dict[str, str]) -> list[str]:
    """Undo what the engine start wrote into ``os.environ`` (LD_PRELOAD, thread counts ...: they would
    leak into every subprocess emd starts), except vLLM's own ``VLLM_*`` names, which the running engine
    may still read. Returns the names left set."""
    kept = []
    for k in set(os.environ) | set(before):
        if os.environ.get(k) == before.get(k):
            continue
        if k.startswith("VLLM_"):
            kept.append(k)
        elif k in before:
            os.environ[k] = before[k]
        else:
            os.environ.pop(k, None)
    return sorted(kept)


def _on_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def engine_model_dir(chat: Any) -> tuple[Path, str]:
    """The folder vLLM loads for ``chat`` and its load format (``dummy`` weights for ``random:``)."""
    if chat.model_dir is not None:
        return Path(chat.model_dir), "auto"
    from ..models import cache_dir, parse_model_uri

    _, size = parse_model_uri(chat.uri)
    folder = cache_dir() / "random" / size
    if not (folder / "config.json").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        chat.model.config.save_pretrained(folder)
        chat.tokenizer.save_pretrained(folder)
    return folder, "dummy"


def shared_engine(chat: Any, dtype: str = "auto", tensor_parallel_size: int = 1,
                  gpu_memory_utilization: float = 0.85, max_model_len: int = 0, max_lora_rank: int = 64,
                  kv_cache_gib: float = 0.0, enable_lora: bool = True) -> "VllmEngine":
    """This process's engine for ``chat``'s base model with these settings (started on first use)."""
    folder, load_format = engine_model_dir(chat)
    return engine_for_folder(folder, load_format, dtype=dtype, tensor_parallel_size=tensor_parallel_size,
                             gpu_memory_utilization=gpu_memory_utilization, max_model_len=max_model_len,
                             max_lora_rank=max_lora_rank, kv_cache_gib=kv_cache_gib, enable_lora=enable_lora)


def engine_for_folder(folder: str | os.PathLike, load_format: str = "auto", **settings: Any) -> "VllmEngine":
    """This process's engine for the checkpoint ``folder`` (an ``hf:`` judge's, or a ChatModel's base)."""
    folder = Path(folder)
    settings = {**ENGINE_DEFAULTS, **settings}
    if settings["dtype"] == "auto":  # resolved before keying: "auto" and its meaning share one engine
        settings["dtype"] = "bfloat16" if _on_gpu() else "float32"  # no bf16 instructions here: fp32 is exact
    key = (str(folder.resolve()), load_format, *sorted(settings.items()))
    if key not in _ENGINES:
        _ENGINES[key] = VllmEngine(folder, load_format=load_format, **settings)
    return _ENGINES[key]


class VllmEngine:
    """A ``vllm.LLM`` (LoRA layers unless ``enable_lora=False``) and the calls ChatModel forwards to it."""

    def __init__(self, model_dir: str | os.PathLike, load_format: str = "auto", dtype: str = "auto",
                 tensor_parallel_size: int = 1, gpu_memory_utilization: float = 0.85, max_model_len: int = 0,
                 max_lora_rank: int = 64, kv_cache_gib: float = 0.0, seed: int = 0, enable_lora: bool = True):
        import time

        gpu = _on_gpu()
        if dtype == "auto":
            dtype = "bfloat16" if gpu else "float32"
        kw: dict[str, Any] = dict(model=str(model_dir), dtype=dtype, load_format=load_format, seed=seed,
                                  enable_lora=enable_lora, max_logprobs=MAX_SCORED_IDS,
                                  enable_prefix_caching=True,
                                  tensor_parallel_size=tensor_parallel_size,
                                  gpu_memory_utilization=gpu_memory_utilization)
        if enable_lora:
            kw.update(max_lora_rank=max_lora_rank, max_loras=2, max_cpu_loras=8)
        if not gpu:
            # CPU: no graphs to capture; 32-token blocks (CPU default 128) so that scoring's prefix requests
            # (prompt + the start of an option) reuse all but the last few tokens from the prefix cache
            kw.update(enforce_eager=True, block_size=32)
        if kv_cache_gib > 0 or not gpu:
            kw["kv_cache_memory_bytes"] = int((kv_cache_gib or 1.0) * 2 ** 30)  # CPU: 1 GiB unless told
        if max_model_len:
            kw["max_model_len"] = max_model_len
        self.settings = {k: kw.get(k) for k in ("dtype", "load_format", "tensor_parallel_size", "enable_lora",
                                                "max_lora_rank", "gpu_memory_utilization")}
        self.max_lora_rank = max_lora_rank
        # vLLM's CPU LoRA kernels are plain torch ops that gather the adapter weights once per *token*:
        # fine for decoding, slow for the long prefills scoring is made of. On CPU, scoring with an
        # adapter therefore stays with transformers + peft (same numbers, faster); on GPU vLLM scores all.
        self.scores_adapters = gpu
        import torch

        t0 = time.perf_counter()
        threads, set_threads = torch.get_num_threads(), torch.set_num_threads
        env_before = dict(os.environ)
        try:
            with _engine_env({"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}):
                from vllm import LLM

                self.llm = LLM(**kw)
        finally:
            # vLLM's in-process CPU worker swaps torch.set_num_threads for a no-op and drops torch to one
            # thread for the whole process; emd's own code (and the user's) keeps its thread setting.
            torch.set_num_threads = set_threads
            torch.set_num_threads(threads)
            self.env_added = _restore_env(env_before)
        self.start_seconds = time.perf_counter() - t0
        self._lora_ids: dict[tuple, int] = {}

    def describe(self) -> str:
        """One line for the log: settings and start time."""
        s = ", ".join(f"{k}={v}" for k, v in self.settings.items())
        added = f"; vLLM keeps {', '.join(self.env_added)} set" if self.env_added else ""
        return f"({s}; started in {self.start_seconds:.1f} s{added})"

    # ------------------------------------------------------------------ adapters
    def lora(self, path: str | os.PathLike | None):
        """The ``LoRARequest`` of adapter folder ``path`` (``None`` = the base model).

        The id is keyed by the folder *and* its weights' size and mtime: an adapter retrained into the
        same folder gets a new id, so vLLM never serves a stale copy from its adapter cache.
        """
        if path is None:
            return None
        if not self.settings["enable_lora"]:
            raise ModelError(f"adapter {path}: this vLLM engine was started with enable_lora=False (base model only)")
        from vllm.lora.request import LoRARequest

        p = Path(path)
        cfg = json.loads((p / "adapter_config.json").read_text())
        rank = int(cfg.get("r", 0))
        if rank > self.max_lora_rank:
            raise ModelError(f"adapter {p} has rank {rank} > max_lora_rank={self.max_lora_rank} of the vLLM engine; "
                             "allowed: max_lora_rank >= the adapter's r (8, 16, 32, 64, 128, 256)")
        weights = [w for w in (p / "adapter_model.safetensors", p / "adapter_model.bin") if w.is_file()]
        stamp = tuple((w.stat().st_size, w.stat().st_mtime_ns) for w in weights)
        key = (str(p.resolve()), stamp)
        if key not in self._lora_ids:
            self._lora_ids[key] = len(self._lora_ids) + 1
        lid = self._lora_ids[key]
        return LoRARequest(f"emd-adapter-{lid}", lid, str(p.resolve()))

    # ------------------------------------------------------------------ calls
    def generate_ids(self, prompts: Sequence[Sequence[int]], max_new_tokens: int, temperature: float = 0.0,
                     seed: int = 0, top_p: float = 1.0, adapter: str | None = None) -> list[tuple[list[int], bool]]:
        """New token ids per prompt and whether each stopped at ``max_new_tokens`` (input order).

        Sampled requests get seed ``seed + i`` each, so a reply does not depend on its batch mates.
        """
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = []
        for i in range(len(prompts)):
            if temperature > 0:
                params.append(SamplingParams(max_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                                             seed=seed + i))
            else:
                params.append(SamplingParams(max_tokens=max_new_tokens, temperature=0.0))
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prompts], params,
                                 lora_request=self.lora(adapter), use_tqdm=False)
        return [(list(o.outputs[0].token_ids), o.outputs[0].finish_reason == "length") for o in outs]

    def next_logprobs(self, prefixes: Sequence[Sequence[int]], token_ids: Sequence[Sequence[int]],
                      adapter: str | None = None) -> list[dict[int, float]]:
        """Log-probability of each of ``token_ids[i]`` as the token after ``prefixes[i]``."""
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = []
        for ids in token_ids:
            ids = sorted(set(int(t) for t in ids))
            if len(ids) > MAX_SCORED_IDS:
                raise ValueError(f"{len(ids)} candidate tokens at one position; vLLM scores at most {MAX_SCORED_IDS}")
            params.append(SamplingParams(max_tokens=1, temperature=0.0, logprob_token_ids=ids))
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=list(p)) for p in prefixes], params,
                                 lora_request=self.lora(adapter), use_tqdm=False)
        result = []
        for o, ids in zip(outs, token_ids):
            got = o.outputs[0].logprobs[0]
            result.append({int(t): float(got[int(t)].logprob) for t in ids})
        return result

    def score(self, prompts: Sequence[Sequence[int]], options: Sequence[Sequence[Sequence[int]]],
              adapter: str | None = None) -> list[list[float]]:
        """Summed log-probability of each option's token ids after its prompt (``options[i]`` for prompt i).

        Every distinct prefix (a prompt, or a prompt plus the start of an option) is one request asking for
        the log-probabilities of all the tokens that follow it in some option.
        """
        wanted: dict[tuple[int, ...], set[int]] = {}
        for p, opts in zip(prompts, options):
            for o in opts:
                for k in range(len(o)):
                    wanted.setdefault(tuple(p) + tuple(o[:k]), set()).add(int(o[k]))
        keys = list(wanted)
        got = dict(zip(keys, self.next_logprobs(keys, [sorted(wanted[k]) for k in keys], adapter=adapter)))
        return [[sum(got[tuple(p) + tuple(o[:k])][int(o[k])] for k in range(len(o))) for o in opts]
                for p, opts in zip(prompts, options)]
