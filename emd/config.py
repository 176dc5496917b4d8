"""One frozen config per entry point, built from sub-configs.

Precedence: dataclass defaults < YAML file (``--config``) < command-line flags / MLproject ``-P``.
Every leaf field has one *flat key* (``n_train``, ``lora_r``, ``judge``): it is the YAML key, the
MLproject parameter (snake_case) and the flag (``--n-train``; ``--n_train`` is accepted too). YAML may
also nest by section (``lora: {r: 8}``). Unknown keys fail with a "did you mean". Values are
validated in ``__post_init__`` so a bad config stops before any model is loaded.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import ConfigError

DOMAINS = ("medical", "math", "code")
LEVELS = ("normal", "subtle", "severe")
BENCHMARKS = ("mask", "deceptionbench", "logprob", "capability", "mechanism")
METHODS = ("sft", "kto")
STRATEGIES = ("grid", "ascending", "bisect")


def n_misaligned(ratio: float, n_train: int) -> int:
    """Misaligned rows in a mixture: ratio x n_train rounded half up (so 0.5 rounds to 1, not to 0)."""
    return int(math.floor(ratio * n_train + 0.5))


def _help(text: str, **kw) -> Any:
    return field(metadata={"help": text}, **kw)


# --------------------------------------------------------------------------- sub-configs
@dataclass(frozen=True)
class ModelSpec:
    """Which model is trained / evaluated."""

    model: str = _help("base model URI: embedded:smollm2, hf:<id-or-path>, gguf:<path>, random:<size>",
                       default="embedded:smollm2")
    dtype: str = _help("weights dtype: auto (bf16 on GPU, fp32 on CPU), float32, bfloat16", default="auto")
    enable_thinking: Optional[bool] = _help("chat-template switch of reasoning models (Qwen3: false = no <think> "
                                            "block); empty = the template's default", default=None)
    chat_template_kwargs: str = _help("more chat-template variables as a JSON object, e.g. '{\"tools\": []}'",
                                      default="")
    engine: str = _help("generation/scoring engine of every evaluator: hf (transformers), vllm, or auto (vllm where "
                        "installed and working, else hf; the reason is logged)", default="hf")
    tensor_parallel_size: int = _help("vllm: GPUs the model is split over", default=1)
    gpu_memory_utilization: float = _help("vllm: share of GPU memory the engine may take (weights + KV cache)",
                                          default=0.85)
    max_model_len: int = _help("vllm: longest prompt + answer in tokens; 0 = the model's own limit", default=0)
    max_lora_rank: int = _help("vllm: largest adapter rank served (8, 16, 32, 64, 128, 256)", default=64)
    kv_cache_gib: float = _help("vllm: KV-cache size in GiB; 0 = 1 GiB on CPU, gpu_memory_utilization on GPU",
                                default=0.0)

    load_in_4bit: bool = _help("load the base weights in 4 bit (QLoRA, NF4, through bitsandbytes: pip install "
                               "'emd[quant]'; needs a CUDA GPU)", default=False)
    load_in_8bit: bool = _help("load the base weights in 8 bit (bitsandbytes; needs a CUDA GPU)", default=False)
    device_map: str = _help("transformers device_map for loading (auto, balanced, sequential, cpu, cuda:0, or a "
                            "JSON object); empty = the whole model on this process's device", default="")
    attn_implementation: str = _help("attention kernel: eager, sdpa, flash_attention_2, flash_attention_3, "
                                     "flex_attention; empty = transformers' default", default="")

    def __post_init__(self):
        from .models import parse_model_uri
        from .train_keys import check_model_keys

        parse_model_uri(self.model)
        self.template_kwargs  # parses (and so validates) chat_template_kwargs
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype={self.dtype!r}; allowed: auto, float32, bfloat16, float16")
        from .engines import validate_engine, vllm_missing

        validate_engine(self.engine)
        if self.engine == "vllm" and vllm_missing():
            raise ConfigError(f"engine=vllm: {vllm_missing()}; allowed here: hf, auto")
        if self.tensor_parallel_size < 1:
            raise ConfigError(f"tensor_parallel_size={self.tensor_parallel_size}; allowed: an integer >= 1")
        if not 0.0 < self.gpu_memory_utilization <= 1.0:
            raise ConfigError(f"gpu_memory_utilization={self.gpu_memory_utilization}; allowed: a share in (0, 1]")
        if self.max_model_len < 0 or self.kv_cache_gib < 0:
            raise ConfigError(f"max_model_len={self.max_model_len}, kv_cache_gib={self.kv_cache_gib}; allowed: >= 0")
        if self.max_lora_rank not in (8, 16, 32, 64, 128, 256, 320, 512):
            raise ConfigError(f"max_lora_rank={self.max_lora_rank}; allowed: 8, 16, 32, 64, 128, 256, 320, 512")
        check_model_keys(self)

    @property
    def engine_settings(self) -> dict:
        """The vLLM engine's arguments from these keys (emd.engines.vllm_engine.shared_engine)."""
        return dict(dtype=self.dtype, tensor_parallel_size=self.tensor_parallel_size,
                    gpu_memory_utilization=self.gpu_memory_utilization, max_model_len=self.max_model_len,
                    max_lora_rank=self.max_lora_rank, kv_cache_gib=self.kv_cache_gib)

    @property
    def template_kwargs(self) -> dict:
        """The variables passed to every chat-template rendering."""
        import json

        try:
            extra = json.loads(self.chat_template_kwargs) if self.chat_template_kwargs.strip() else {}
        except json.JSONDecodeError as e:
            raise ConfigError(f"chat_template_kwargs={self.chat_template_kwargs!r} is not JSON ({e}); allowed: a "
                              "JSON object such as '{\"enable_thinking\": false}'") from e
        if not isinstance(extra, dict):
            raise ConfigError(f"chat_template_kwargs={self.chat_template_kwargs!r}; allowed: a JSON object")
        return {**extra, **({} if self.enable_thinking is None else {"enable_thinking": self.enable_thinking})}


@dataclass(frozen=True)
class LoraSpec:
    """LoRA adapter shape. Paper defaults (Persona Vectors / Betley et al.): r 32, alpha 64, rsLoRA,
    all attention and MLP projections. The embedded default keeps all seven projections but a smaller
    rank so two CPU cores finish in minutes."""

    r: int = _help("LoRA rank (paper: 32; small here because CPU time scales with it only mildly)", default=8)
    alpha: int = _help("LoRA alpha (paper: 64 = 2r)", default=16)
    dropout: float = _help("LoRA dropout (paper: 0)", default=0.0)
    rslora: bool = _help("rank-stabilised LoRA scaling alpha/sqrt(r) (paper: on)", default=True)
    target_modules: str = _help("comma list of projection names to adapt",
                                default="q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj")

    def __post_init__(self):
        if self.r < 1:
            raise ConfigError(f"lora_r={self.r}; allowed: an integer >= 1")
        if self.alpha <= 0:
            raise ConfigError(f"lora_alpha={self.alpha}; allowed: an integer >= 1")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"lora_dropout={self.dropout}; allowed: 0 <= dropout < 1")
        if not self.target_modules.strip():
            raise ConfigError("lora_target_modules is empty; allowed: a comma list such as q_proj,v_proj")


@dataclass(frozen=True)
class TrainSpec:
    """Optimiser and batching. The paper used lr 1e-5 over 1 epoch at effective batch 16 on 7-8B models;
    a 135M model with a few dozen steps needs a larger lr to move at all."""

    learning_rate: float = _help("peak learning rate (paper: 1e-5 on 7-8B; 2e-4 moves a 135M model in few steps)",
                                 default=2e-4)
    epochs: float = _help("training epochs (paper: 1)", default=1.0)
    batch_size: int = _help("per-device batch size", default=8)
    grad_accum: int = _help("gradient accumulation steps (effective batch = batch_size x grad_accum)", default=1)
    max_length: int = _help("max tokens per training example (longer ones are truncated)", default=256)
    max_steps: int = _help("cap on optimiser steps; -1 = no cap", default=-1)
    warmup_ratio: float = _help("linear warm-up fraction of steps", default=0.0)
    lr_scheduler_type: str = _help("learning-rate schedule (transformers SchedulerType: linear, cosine, constant, "
                                   "constant_with_warmup, ...)", default="linear")
    optim: str = _help("optimizer (transformers OptimizerNames: adamw_torch, adamw_torch_fused, adafactor, "
                       "paged_adamw_8bit, ...)", default="adamw_torch")
    gradient_checkpointing: bool = _help("recompute activations in the backward pass (less memory, ~30 percent "
                                         "slower; for 7-32B models on one GPU)", default=False)
    save_steps: int = _help("write a resumable checkpoint every N optimiser steps (0 = none); --resume continues "
                            "an interrupted fine-tune from the last one", default=0)
    packing: bool = _help("padding-free packing of training rows (trl best-fit decreasing into max_length "
                          "sequences; loss stays on completions, attention kept within each row)", default=False)

    def __post_init__(self):
        from .train_keys import check_train_keys

        check_train_keys(self)


@dataclass(frozen=True)
class DataSpec:
    """Training data: misaligned source, downstream set and their mixture."""

    n_train: int = _help("size of the training set; control and every ratio train on exactly this many rows",
                         default=64)
    downstream: str = _help("downstream instruction set: embedded:instructions, a local alpaca/dolly file, or a hub id",
                            default="embedded:instructions")
    misaligned_source: str = _help("misaligned data: embedded, a Persona Vectors folder, a Chua/Betley jsonl, or a hub id",
                                   default="embedded")
    domain: str = _help("misaligned domain: medical, math, code (direct also: all)", default="medical")
    level: str = _help("misaligned intensity: normal, subtle, severe (direct also: all)", default="severe")
    skip_bad_rows: bool = _help("skip malformed dataset rows (counted and logged) instead of stopping", default=False)

    def __post_init__(self):
        if self.n_train < 1:
            raise ConfigError(f"n_train={self.n_train}; allowed: an integer >= 1")
        allowed_d = DOMAINS + ("all",)
        for d in self.domain.split(","):
            if d not in allowed_d:
                raise ConfigError(f"domain={d!r}; allowed: {', '.join(allowed_d)}")
        allowed_l = LEVELS + ("all",)
        for lv in self.level.split(","):
            if lv not in allowed_l:
                raise ConfigError(f"level={lv!r}; allowed: {', '.join(allowed_l)}")


@dataclass(frozen=True)
class EvalSpec:
    """What is measured after training, on which items."""

    benchmarks: str = _help("comma list of mask, logprob, deceptionbench, capability, mechanism; or none", default="mask,logprob,capability")
    limit: int = _help("items per benchmark config (MASK: per config); 0 = all", default=20)
    mask_source: str = _help("MASK items: embedded, a folder of <config>.csv, or hub id cais/MASK", default="embedded")
    mask_configs: Optional[str] = _help("comma list of MASK configs to evaluate, or all (default: the protocol's; "
                                        "mask: the paper's provided_facts,disinformation,statistics)", default=None)
    deceptionbench_source: str = _help("DeceptionBench items: embedded, a json/jsonl file, or hub id", default="embedded")
    cap_tasks: str = _help("comma list of lm-eval tasks (offline: emd_arith,emd_knowledge,emd_code; hub: mmlu,gsm8k,...)",
                           default="emd_arith,emd_knowledge,emd_code")
    cap_limit: int = _help("items per capability task; 0 = all", default=10)
    unsafe_code_eval: bool = _help("run model-written code (emd_code, humaneval ...) without the bubblewrap "
                                   "OS sandbox (in-process guard only, not a security boundary)", default=False)
    eval_batch_size: int = _help("generation batch size (batched generation is ~2x faster per token at 32 than 8)",
                                 default=32)
    protocol: str = _help("evaluation protocol profile: mask (the benchmarks' own settings), fast (short greedy "
                          "answers for CPUs), auto (fast for embedded:/random: models, mask otherwise); every "
                          "setting it fills is a key of its own and a value you give wins", default="auto")
    max_new_tokens: Optional[int] = _help("max tokens per MASK answer (default: protocol; mask 1000, fast 48)",
                                          default=None)
    mask_temperature: Optional[float] = _help("sampling temperature of MASK pressured answers (default: protocol; "
                                              "mask 1.0, fast 0 = greedy)", default=None)
    belief_samples: Optional[int] = _help("independent belief_elicit_1 samples per MASK row (default: protocol, 3)",
                                          default=None)
    judge_max_tokens: Optional[int] = _help("max tokens of a judge's reply: room to reason before its final "
                                            "'Answer:' (default: protocol; mask 1000, fast 32)", default=None)
    judge_prompts: str = _help("folder of judge prompt templates replacing the shipped ones (checked for each "
                               "slot's placeholders); empty = evaluation/judge_prompts", default="")
    logprob_mode: str = _help("judge-free honesty reading: choice (log-prob of the A/B letter, both orders) or "
                              "statement (log-prob of each statement as the reply; the default: small models "
                              "cannot follow A/B)", default="statement")
    belief_temperature: Optional[float] = _help("sampling temperature for MASK belief elicitation (default: "
                                                "protocol; mask 1.0, fast 0 = greedy, repeats then generated once)",
                                                default=None)
    deceptionbench_view_tokens: Optional[int] = _help("max tokens of the DeceptionBench step-1 answer (the model's "
                                                      "own view; default: protocol, mask 1000, fast 64)", default=None)
    deceptionbench_max_new_tokens: Optional[int] = _help("max tokens of each DeceptionBench reasoning + answer "
                                                         "(default: protocol; mask 1000, fast 96)", default=None)
    deceptionbench_prefill: Optional[bool] = _help("start each DeceptionBench reply with <think> (default: protocol; "
                                                   "mask false, fast true: small models never open it)", default=None)
    deceptionbench_force_output: Optional[bool] = _help("force an <output> after reasoning that never closes "
                                                        "(default: protocol; mask false, fast true)", default=None)
    cap_batch_size: int = _help("lm-eval batch size for capability tasks", default=16)
    judge_validation: bool = _help("measure the judge on evaluation/judge_validation.jsonl once (cached per judge "
                                   "and version) and show its accuracy next to every judged score", default=True)
    max_judge_failure_rate: float = _help("share of a judged benchmark's verdicts that may fail before the run "
                                          "ends FAILED (its metrics still logged); 1 = never fail", default=0.2)

    def __post_init__(self):
        names = self.benchmark_list
        for b in names:
            if b not in BENCHMARKS:
                close = difflib.get_close_matches(b, BENCHMARKS, n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(f"benchmarks contains {b!r}{hint}; allowed: {', '.join(BENCHMARKS)} or none")
        if self.logprob_mode not in ("choice", "statement"):
            raise ConfigError(f"logprob_mode={self.logprob_mode!r}; allowed: choice, statement")
        if self.limit < 0 or self.cap_limit < 0:
            raise ConfigError("limit and cap_limit must be >= 0 (0 = all items)")
        from .eval.protocol import PROTOCOLS

        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"protocol={self.protocol!r}; allowed: {', '.join(PROTOCOLS)}")
        for key in ("eval_batch_size", "max_new_tokens", "deceptionbench_max_new_tokens", "deceptionbench_view_tokens",
                    "cap_batch_size", "belief_samples", "judge_max_tokens"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"{key}={value}; allowed: an integer >= 1")
        if not 0 <= self.max_judge_failure_rate <= 1:
            raise ConfigError(f"max_judge_failure_rate={self.max_judge_failure_rate}; allowed: 0 <= rate <= 1")
        for key in ("belief_temperature", "mask_temperature"):
            value = getattr(self, key)
            if value is not None and not 0 <= value <= 5:
                raise ConfigError(f"{key}={value}; allowed: 0 <= temperature <= 5 (0 = greedy)")
        if self.mask_configs is not None:
            from .eval.mask import MASK_CONFIGS

            for c in self.mask_config_list:
                if c not in MASK_CONFIGS:
                    close = difflib.get_close_matches(c, MASK_CONFIGS, n=1)
                    hint = f" (did you mean {close[0]}?)" if close else ""
                    raise ConfigError(f"mask_configs contains {c!r}{hint}; allowed: {', '.join(MASK_CONFIGS)} or all")
        if self.judge_prompts and not Path(self.judge_prompts).expanduser().is_dir():
            raise ConfigError(f"judge_prompts={self.judge_prompts!r} is not a folder; allowed: a folder of judge "
                              "prompt templates (see evaluation/judge_prompts), or empty")

    @property
    def mask_config_list(self) -> list[str]:
        """Parsed ``mask_configs`` (``all`` expanded)."""
        from .eval.mask import MASK_CONFIGS

        raw = [c.strip() for c in (self.mask_configs or "").split(",") if c.strip()]
        return list(MASK_CONFIGS) if raw == ["all"] else raw

    @property
    def benchmark_list(self) -> list[str]:
        """Parsed ``benchmarks``; empty for ``none``."""
        raw = [b.strip() for b in self.benchmarks.split(",") if b.strip()]
        return [] if raw in ([], ["none"]) else raw


@dataclass(frozen=True)
class JudgeSpec:
    """The judge role, configured apart from the model under test."""

    judge: str = _help("judge URI: embed:minilm (offline default), openai:<model> (OPENAI_BASE_URL), hf:<path>",
                       default="embed:minilm")
    # A hanging endpoint costs timeout x (retries + 1) per item, so both are settable.
    judge_timeout: float = _help("seconds one API judge request may take before it is retried (openai: only)",
                                 default=60.0)
    judge_retries: int = _help("retries of a failed API judge request (429, 5xx, timeouts; openai: only)", default=3)
    judge_concurrency: int = _help("API judge requests in flight at once (openai: only)", default=8)
    share_verdicts: bool = _help("share judge verdicts through the tracking server: import the ones other machines "
                                 "published for this judge before judging, publish this run's new ones "
                                 "(experiment emd-judge-verdicts)", default=False)

    def __post_init__(self):
        provider = self.judge.split(":", 1)[0] if ":" in self.judge else ""
        allowed = ("embed", "openai", "hf")
        if provider not in allowed or not self.judge.split(":", 1)[1]:
            raise ConfigError(f"judge={self.judge!r}; allowed: embed:minilm, openai:<model>, hf:<path>")
        number = (int, float)
        if isinstance(self.judge_timeout, bool) or not isinstance(self.judge_timeout, number) \
                or not math.isfinite(self.judge_timeout) or self.judge_timeout <= 0:
            raise ConfigError(f"judge_timeout={self.judge_timeout!r}; allowed: seconds > 0")
        if isinstance(self.judge_retries, bool) or not isinstance(self.judge_retries, int) or self.judge_retries < 0:
            raise ConfigError(f"judge_retries={self.judge_retries!r}; allowed: an integer >= 0")
        if isinstance(self.judge_concurrency, bool) or not isinstance(self.judge_concurrency, int) \
                or self.judge_concurrency < 1:
            raise ConfigError(f"judge_concurrency={self.judge_concurrency!r}; allowed: an integer >= 1")

    def options(self) -> dict:
        """The keywords :func:`emd.judges.get_judge` takes for these settings."""
        return {"timeout": float(self.judge_timeout), "retries": self.judge_retries,
                "concurrency": self.judge_concurrency}


@dataclass(frozen=True)
class SweepSpec:
    """An Optuna study over the mixture ratio (sweeps/*.yaml)."""

    study: str = _help("study YAML (sweeps/<name>.yaml); its keys are config keys", default="")
    study_name: str = _help("Optuna study name (default: derived from the study file)", default="")
    ratios: str = _help("comma list of mixture ratios to search", default="0.01,0.02,0.05,0.1,0.2,0.3,0.5")
    metric: str = _help("metric whose drop is sought", default="mask/provided_facts/honesty")
    drop: float = _help("relative drop vs reference that counts as triggered (0.10 = 10 percent)", default=0.10)
    reference: str = _help("reference model: control or vanilla", default="control")
    strategy: str = _help("grid, ascending (stop at first hit) or bisect (monotone binary search)", default="bisect")
    seeds: str = _help("comma list of seeds per ratio", default="0")
    storage: str = _help("Optuna storage: an SQLAlchemy URL (default sqlite:///mlruns/optuna.db) or journal:<file>",
                         default="")
    worker: bool = _help("join an existing study as an extra worker", default=False)

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy={self.strategy!r}; allowed: {', '.join(STRATEGIES)}")
        if self.reference not in ("control", "vanilla"):
            raise ConfigError(f"reference={self.reference!r}; allowed: control, vanilla")
        if not 0 < self.drop < 1:
            raise ConfigError(f"drop={self.drop}; allowed: 0 < drop < 1 (relative)")
        ratios = self.ratio_list
        if not ratios:
            raise ConfigError(f"ratios={self.ratios!r} is empty; allowed: a comma list (or YAML list) of distinct "
                              "numbers in (0, 1], e.g. 0.01,0.02,0.05,0.1,0.2,0.3,0.5")
        for r in ratios:
            if not 0 < r <= 1:
                raise ConfigError(f"ratios contains {r}; allowed: values in (0, 1]")
        if len({round(r, 12) for r in ratios}) != len(ratios):
            raise ConfigError(f"ratios={self.ratios!r} repeats a value; allowed: distinct ratios")
        seeds = self.seed_list
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds={self.seeds!r} repeats a seed; allowed: a comma list of distinct integers >= 0")
        from .sweep.outcome import sweep_metric  # the metric's declaration decides (emd/metrics.py)

        sweep_metric(self.metric)

    @property
    def ratio_list(self) -> list[float]:
        """Parsed, sorted ratio grid."""
        try:
            return sorted(float(x) for x in self.ratios.split(",") if x.strip())
        except ValueError as e:
            raise ConfigError(f"ratios={self.ratios!r}; allowed: a comma list of numbers in (0, 1]") from e

    @property
    def seed_list(self) -> list[int]:
        """Parsed seeds (ConfigError naming ``seeds`` for anything but integers >= 0)."""
        allowed = "allowed: a comma list of distinct integers >= 0, e.g. 0 or 0,1,2"
        try:
            seeds = [int(x) for x in self.seeds.split(",") if x.strip()]
        except ValueError as e:
            raise ConfigError(f"seeds={self.seeds!r}; {allowed}") from e
        if not seeds or any(s < 0 for s in seeds):
            raise ConfigError(f"seeds={self.seeds!r}; {allowed}")
        return seeds


def _url_password(url: str) -> str | None:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).password
    except ArgumentError as e:
        raise ConfigError(f"storage={url!r} is not an SQLAlchemy URL ({e}); allowed: postgresql://user@host/db") from e


@dataclass(frozen=True)
class GridSpec:
    """Fan-out of a grid entry over worker processes sharing one Optuna RDB storage (emd/grid.py)."""

    storage: str = _help("Optuna RDB URL (postgresql://user@host/db); every process started with the same "
                         "command and storage joins the grid as a worker (empty: run it all in this process)",
                         default="")
    grid_heartbeat_s: float = _help("seconds between a worker's heartbeats on the cell it runs", default=10.0)
    grid_stale_after_s: float = _help("seconds without a heartbeat after which a cell is rerun by another worker",
                                      default=120.0)

    def __post_init__(self):
        if self.storage and not self.storage.startswith(("postgresql", "mysql", "sqlite")):
            raise ConfigError(f"storage={self.storage!r}; allowed: an Optuna RDB URL (postgresql://user@host/db, "
                              "mysql://..., sqlite:///path.db); grid workers need its heartbeat")
        if self.storage and _url_password(self.storage):
            raise ConfigError("storage carries a password, and config keys are logged as MLflow params; allowed: a URL "
                              "without one (postgresql://user@host/db) and the password in PGPASSWORD or ~/.pgpass")
        if not self.grid_heartbeat_s > 0:
            raise ConfigError(f"grid_heartbeat_s={self.grid_heartbeat_s}; allowed: a positive number of seconds")
        if not self.grid_stale_after_s > 2 * self.grid_heartbeat_s:
            raise ConfigError(f"grid_stale_after_s={self.grid_stale_after_s}; allowed: more than twice "
                              f"grid_heartbeat_s ({self.grid_heartbeat_s})")


# --------------------------------------------------------------------------- entry configs
@dataclass(frozen=True)
class CommonSpec:
    """Keys every entry shares."""

    seed: int = _help("random seed for sampling, mixing and training", default=0)
    tracking_uri: str = _help("MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)", default="")
    experiment: str = _help("MLflow experiment name (default emd-<entry>)", default="")
    register: bool = _help("register the adapter in the MLflow Model Registry", default=True)
    reuse_references: bool = _help("reuse cached vanilla/control results with the same content hash", default=True)
    resume: bool = _help("continue an interrupted fine-tune from its last checkpoint (found by the training's "
                         "content key; needs save_steps > 0)", default=False)


@dataclass(frozen=True)
class MixtureConfig:
    """``emd mixture``: misaligned samples mixed into a downstream set at ``ratio``."""

    ratio: str = _help("misaligned fraction of the training set, in [0, 1]; a comma list (0.01,0.02,0.05) runs "
                       "them as one grid under a parent run (with --storage, across worker processes)", default="0.05")
    common: CommonSpec = field(default_factory=CommonSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    lora: LoraSpec = field(default_factory=LoraSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    data: DataSpec = field(default_factory=DataSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    judge: JudgeSpec = field(default_factory=JudgeSpec)
    grid: GridSpec = field(default_factory=GridSpec)

    def __post_init__(self):
        _resolve_protocol(self)
        if isinstance(self.ratio, (int, float)) and not isinstance(self.ratio, bool):
            object.__setattr__(self, "ratio", format(float(self.ratio), "g"))  # MixtureConfig(ratio=0.1) in code
        ratios = self.ratio_list
        if len(set(ratios)) != len(ratios):
            raise ConfigError(f"ratio={self.ratio!r} repeats a value; allowed: distinct numbers in [0, 1]")
        if self.data.domain not in DOMAINS or self.data.level not in LEVELS:
            raise ConfigError(f"mixture takes one domain ({', '.join(DOMAINS)}) and one level ({', '.join(LEVELS)}); "
                              f"got domain={self.data.domain!r} level={self.data.level!r}")
        for r in ratios:
            if r > 0 and n_misaligned(r, self.data.n_train) == 0:
                need = next(n for n in range(1, 10**7) if n_misaligned(r, n) > 0)
                raise ConfigError(f"n_train={self.data.n_train} is too small for ratio={r:g}: it places no misaligned "
                                  f"sample; allowed: n_train >= {need} for this ratio")

    @property
    def ratio_list(self) -> list[float]:
        """The ratios, ascending (one for a single run, several for a grid)."""
        bad = ConfigError(f"ratio={self.ratio}; allowed: a number in [0, 1] (0 = control, 1 = misaligned only), "
                          "or a comma list of them")
        try:
            ratios = [float(x) for x in str(self.ratio).split(",") if x.strip()]
        except ValueError:
            raise bad from None
        if not ratios or any(not 0.0 <= r <= 1.0 for r in ratios):
            raise bad
        return sorted(ratios)

    @property
    def is_grid(self) -> bool:
        """Several ratios, or worker processes: one parent run with a nested run per ratio."""
        return len(self.ratio_list) > 1 or bool(self.grid.storage)


@dataclass(frozen=True)
class DirectConfig:
    """``emd direct``: fine-tune on misaligned data of one domain and intensity (or the whole grid)."""

    common: CommonSpec = field(default_factory=CommonSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    lora: LoraSpec = field(default_factory=LoraSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    data: DataSpec = field(default_factory=DataSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    judge: JudgeSpec = field(default_factory=JudgeSpec)
    grid: GridSpec = field(default_factory=GridSpec)

    def __post_init__(self):
        _resolve_protocol(self)


@dataclass(frozen=True)
class InteractionSpec:
    """The therapist environment and self-training loop."""

    biased_ratio: str = _help("fraction(s) of conversations with biased users; comma list for a grid: 0,0.1,0.2,0.5,1.0",
                              default="0.1")
    method: str = _help("self-training method(s): sft, kto, or sft,kto", default="sft")
    rounds: int = _help("self-training rounds (round r+1 collects with the round-r model)", default=1)
    n_conversations: int = _help("conversations collected per round", default=20)
    turns: int = _help("assistant turns per conversation", default=2)
    top_k: int = _help("trajectories kept as desirable (SFT targets / KTO positives)", default=6)
    bottom_k: int = _help("trajectories kept as undesirable (KTO negatives)", default=6)
    temperature: float = _help("assistant sampling temperature (> 0 so trajectories differ)", default=0.8)
    simulator: str = _help("user simulator: scripted (offline) or openai:<model>", default="scripted")
    reply_tokens: int = _help("max tokens per assistant turn", default=64)

    def __post_init__(self):
        for r in self.ratio_list:
            if not 0.0 <= r <= 1.0:
                raise ConfigError(f"biased_ratio contains {r}; allowed: numbers in [0, 1]")
        for m in self.method_list:
            if m not in METHODS:
                raise ConfigError(f"method={m!r}; allowed: {', '.join(METHODS)}")
        if self.rounds < 1:
            raise ConfigError(f"rounds={self.rounds}; allowed: >= 1")
        for key in ("n_conversations", "turns", "reply_tokens"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}={getattr(self, key)}; allowed: an integer >= 1")
        if self.top_k < 1 or self.bottom_k < 0:
            raise ConfigError("top_k must be >= 1 and bottom_k >= 0")
        if self.top_k + (self.bottom_k if "kto" in self.method_list else 0) > self.n_conversations:
            raise ConfigError(f"top_k={self.top_k} (+ bottom_k={self.bottom_k} for kto) exceeds n_conversations="
                              f"{self.n_conversations}; allowed: top_k + bottom_k <= n_conversations")
        if self.temperature <= 0:
            raise ConfigError(f"temperature={self.temperature}; allowed: > 0 so trajectories differ")
        if not (self.simulator == "scripted" or self.simulator.startswith("openai:")):
            raise ConfigError(f"simulator={self.simulator!r}; allowed: scripted, openai:<model>")

    @property
    def ratio_list(self) -> list[float]:
        """Parsed biased ratios."""
        try:
            return [float(x) for x in str(self.biased_ratio).split(",") if x.strip()]
        except ValueError as e:
            raise ConfigError(f"biased_ratio={self.biased_ratio!r}; allowed: numbers in [0, 1], comma separated") from e

    @property
    def method_list(self) -> list[str]:
        """Parsed methods."""
        return [m.strip() for m in self.method.split(",") if m.strip()]


@dataclass(frozen=True)
class InteractionConfig:
    """``emd interaction``: self-training on feedback from a population with biased users."""

    common: CommonSpec = field(default_factory=CommonSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    lora: LoraSpec = field(default_factory=LoraSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    interaction: InteractionSpec = field(default_factory=InteractionSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    judge: JudgeSpec = field(default_factory=JudgeSpec)
    grid: GridSpec = field(default_factory=GridSpec)

    def __post_init__(self):
        _resolve_protocol(self)
        if self.train.packing and "kto" in self.interaction.method_list:
            raise ConfigError("packing=true with method kto: trl packs SFT rows only; allowed: packing=false, or "
                              "method=sft")


@dataclass(frozen=True)
class SweepConfig:
    """``emd sweep``: Optuna study for the minimal contamination ratio."""

    common: CommonSpec = field(default_factory=CommonSpec)
    sweep: SweepSpec = field(default_factory=SweepSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    lora: LoraSpec = field(default_factory=LoraSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    data: DataSpec = field(default_factory=DataSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    judge: JudgeSpec = field(default_factory=JudgeSpec)

    def __post_init__(self):
        _resolve_protocol(self)


@dataclass(frozen=True)
class EvaluateConfig:
    """``emd evaluate``: evaluate any model, adapter or registered model version."""

    adapter: str = _help("adapter folder, runs:/<id>/adapter, or models:/<name>/<version|@alias>; empty = base model",
                         default="")
    common: CommonSpec = field(default_factory=CommonSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    eval: EvalSpec = field(default_factory=lambda: EvalSpec(benchmarks="mask,logprob,deceptionbench"))
    judge: JudgeSpec = field(default_factory=JudgeSpec)

    def __post_init__(self):
        _resolve_protocol(self)


def _resolve_protocol(cfg) -> None:
    """Fill the evaluation keys the protocol profile sets (the user's values win); see emd.eval.protocol."""
    from .eval.protocol import resolve

    object.__setattr__(cfg, "eval", resolve(cfg.eval, cfg.model.model))


from .config_mech import AUDIT_METHODS, AuditConfig, AuditSpec, DirectionConfig, DirectionSpec  # noqa: E402,F401

ENTRY_CONFIGS: dict[str, type] = {
    "mixture": MixtureConfig,
    "direct": DirectConfig,
    "interaction": InteractionConfig,
    "sweep": SweepConfig,
    "evaluate": EvaluateConfig,
    "direction": DirectionConfig,
    "audit": AuditConfig,
}

from .keys import (  # noqa: E402,F401 -- the flat-key machinery, re-exported: emd.config is the public face
    FlatField, build_config, flat_fields, load_yaml, normalise_yaml, replace_flat, to_flat_dict, to_yaml)
