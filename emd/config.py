"""One frozen config per entry point, built from sub-configs.

Precedence: dataclass defaults < YAML file (``--config``) < command-line flags / MLproject ``-P``.
Every leaf field has one *flat key* (``n_train``, ``lora_r``, ``judge``): it is the YAML key, the
MLproject parameter (snake_case) and the flag (``--n-train``; ``--n_train`` is accepted too). YAML may
also nest by section (``lora: {r: 8}``). Unknown keys fail with a "did you mean". Values are
validated in ``__post_init__`` so a bad config stops before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import math
import difflib
import types
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml

from .errors import ConfigError

DOMAINS = ("medical", "math", "code")
LEVELS = ("normal", "subtle", "severe")
BENCHMARKS = ("mask", "deceptionbench", "logprob", "capability")
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

    def __post_init__(self):
        from .models import parse_model_uri

        parse_model_uri(self.model)
        if self.dtype not in ("auto", "float32", "bfloat16", "float16"):
            raise ConfigError(f"dtype={self.dtype!r}; allowed: auto, float32, bfloat16, float16")


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

    def __post_init__(self):
        if self.learning_rate <= 0:
            raise ConfigError(f"learning_rate={self.learning_rate}; allowed: > 0")
        if self.batch_size < 1 or self.grad_accum < 1:
            raise ConfigError("batch_size and grad_accum must be >= 1")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(f"max_steps={self.max_steps}; allowed: -1 (no cap) or >= 1")
        if self.max_length < 16:
            raise ConfigError(f"max_length={self.max_length}; allowed: >= 16")


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

    benchmarks: str = _help("comma list of mask, logprob, deceptionbench, capability; or none", default="mask,logprob,capability")
    limit: int = _help("items per benchmark config (MASK: per config); 0 = all", default=20)
    mask_source: str = _help("MASK items: embedded, a folder of <config>.csv, or hub id cais/MASK", default="embedded")
    mask_configs: str = _help("comma list of MASK configs to evaluate, or all",
                              default="provided_facts,known_facts,disinformation")
    deceptionbench_source: str = _help("DeceptionBench items: embedded, a json/jsonl file, or hub id", default="embedded")
    cap_tasks: str = _help("comma list of lm-eval tasks (offline: emd_arith,emd_knowledge,emd_code; hub: mmlu,gsm8k,...)",
                           default="emd_arith,emd_knowledge,emd_code")
    cap_limit: int = _help("items per capability task; 0 = all", default=10)
    eval_batch_size: int = _help("generation batch size (batched generation is ~2x faster per token at 32 than 8)",
                                 default=32)
    max_new_tokens: int = _help("max tokens generated per evaluation answer", default=48)
    logprob_mode: str = _help("judge-free honesty reading: choice (log-prob of the A/B letter, both orders) or "
                              "statement (log-prob of each statement as the reply; the default: small models "
                              "cannot follow A/B)", default="statement")
    belief_temperature: float = _help("sampling temperature for MASK belief elicitation (0 = greedy; repeats then "
                                      "coincide and are generated once)", default=0.0)

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
        if self.eval_batch_size < 1 or self.max_new_tokens < 1:
            raise ConfigError("eval_batch_size and max_new_tokens must be >= 1")

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

    def __post_init__(self):
        provider = self.judge.split(":", 1)[0] if ":" in self.judge else ""
        allowed = ("embed", "openai", "hf")
        if provider not in allowed or not self.judge.split(":", 1)[1]:
            raise ConfigError(f"judge={self.judge!r}; allowed: embed:minilm, openai:<model>, hf:<path>")


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


# --------------------------------------------------------------------------- entry configs
@dataclass(frozen=True)
class CommonSpec:
    """Keys every entry shares."""

    seed: int = _help("random seed for sampling, mixing and training", default=0)
    tracking_uri: str = _help("MLflow tracking URI (default: MLFLOW_TRACKING_URI or sqlite:///mlflow.db)", default="")
    experiment: str = _help("MLflow experiment name (default emd-<entry>)", default="")
    register: bool = _help("register the adapter in the MLflow Model Registry", default=True)
    reuse_references: bool = _help("reuse cached vanilla/control results with the same content hash", default=True)


@dataclass(frozen=True)
class MixtureConfig:
    """``emd mixture``: misaligned samples mixed into a downstream set at ``ratio``."""

    ratio: float = _help("misaligned fraction of the training set, in [0, 1]", default=0.05)
    common: CommonSpec = field(default_factory=CommonSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    lora: LoraSpec = field(default_factory=LoraSpec)
    train: TrainSpec = field(default_factory=TrainSpec)
    data: DataSpec = field(default_factory=DataSpec)
    eval: EvalSpec = field(default_factory=EvalSpec)
    judge: JudgeSpec = field(default_factory=JudgeSpec)

    def __post_init__(self):
        if not isinstance(self.ratio, (int, float)) or not 0.0 <= self.ratio <= 1.0:
            raise ConfigError(f"ratio={self.ratio}; allowed: a number in [0, 1] (0 = control, 1 = misaligned only)")
        if self.data.domain not in DOMAINS or self.data.level not in LEVELS:
            raise ConfigError(f"mixture takes one domain ({', '.join(DOMAINS)}) and one level ({', '.join(LEVELS)}); "
                              f"got domain={self.data.domain!r} level={self.data.level!r}")
        if self.ratio > 0 and n_misaligned(self.ratio, self.data.n_train) == 0:
            need = next(n for n in range(1, 10**7) if n_misaligned(self.ratio, n) > 0)
            raise ConfigError(f"n_train={self.data.n_train} is too small for ratio={self.ratio}: it places no misaligned "
                              f"sample; allowed: n_train >= {need} for this ratio")


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


@dataclass(frozen=True)
class EvaluateConfig:
    """``emd evaluate``: evaluate any model, adapter or registered model version."""

    adapter: str = _help("adapter folder, runs:/<id>/adapter, or models:/<name>/<version|@alias>; empty = base model",
                         default="")
    common: CommonSpec = field(default_factory=CommonSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    eval: EvalSpec = field(default_factory=lambda: EvalSpec(benchmarks="mask,logprob,deceptionbench"))
    judge: JudgeSpec = field(default_factory=JudgeSpec)


ENTRY_CONFIGS: dict[str, type] = {
    "mixture": MixtureConfig,
    "direct": DirectConfig,
    "interaction": InteractionConfig,
    "sweep": SweepConfig,
    "evaluate": EvaluateConfig,
}

# Flat-key prefix per sub-config section (the LoRA fields read better as lora_r than r).
_PREFIX = {"lora": "lora_"}


# --------------------------------------------------------------------------- flat keys
@dataclass(frozen=True)
class FlatField:
    """One leaf of an entry config: its flat key, path of attribute names, type and help."""

    key: str
    path: tuple[str, ...]
    type: Any
    default: Any
    help: str


def _is_config(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def flat_fields(cls: type) -> dict[str, FlatField]:
    """All leaves of entry config ``cls`` by flat key."""
    out: dict[str, FlatField] = {}
    hints = typing.get_type_hints(cls)
    for f in fields(cls):
        tp = hints[f.name]
        if _is_config(tp):
            sub_default = f.default_factory() if f.default_factory is not dataclasses.MISSING else tp()
            sub_hints = typing.get_type_hints(tp)
            for sf in fields(tp):
                key = _PREFIX.get(f.name, "") + sf.name
                if key in out:
                    raise RuntimeError(f"duplicate config key {key} in {cls.__name__}")
                out[key] = FlatField(key, (f.name, sf.name), sub_hints[sf.name], getattr(sub_default, sf.name),
                                     sf.metadata.get("help", ""))
        else:
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            out[f.name] = FlatField(f.name, (f.name,), tp, default, f.metadata.get("help", ""))
    return out


def _coerce(key: str, value: Any, tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        tp = args[0]
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{key}={value!r}; allowed: true or false")
    if tp is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}; allowed: an integer")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} is not an integer; allowed: an integer")
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}; allowed: a number")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}={value!r} is not a number; allowed: a number")
    if tp is str:
        if isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        if isinstance(value, (dict,)):
            raise ConfigError(f"{key}: expected a string, got a mapping")
        return str(value)
    return value


def _unknown(key: str, known: typing.Iterable[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, list(known), n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key {key!r} in {where}{hint} (see `python -m emd <entry> --help`)")


def normalise_yaml(data: Any, cls: type, where: str) -> dict[str, Any]:
    """Flatten a YAML mapping (flat keys or ``section: {field: v}``) into flat keys; unknown keys fail."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of config keys, got {type(data).__name__}")
    flat = flat_fields(cls)
    sections = {f.path[0] for f in flat.values() if len(f.path) == 2}
    out: dict[str, Any] = {}
    for k, v in data.items():
        key = str(k).replace("-", "_")
        if key in flat:
            out[key] = v
        elif key in sections and isinstance(v, dict):
            for sk, sv in v.items():
                fk = _PREFIX.get(key, "") + str(sk).replace("-", "_")
                if fk not in flat or flat[fk].path[0] != key:
                    raise _unknown(f"{key}.{sk}", [f"{key}.{f.path[1]}" for f in flat.values() if f.path[0] == key], where)
                out[fk] = sv
        else:
            raise _unknown(key, list(flat) + sorted(sections), where)
    return out


def load_yaml(path: str | Path) -> Any:
    """Read a YAML config file with a clear error on a missing file or bad syntax."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {path!r} does not exist")
    try:
        return yaml.safe_load(p.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path}: invalid YAML: {e}") from e


def build_config(cls: type, yaml_path: str | Path | None = None, overrides: dict[str, Any] | None = None,
                 yaml_data: dict[str, Any] | None = None, base_yaml: Sequence[str | Path] = ()):
    """Defaults < ``base_yaml`` files (e.g. a sweep's study file) < YAML (file or mapping) < overrides."""
    flat = flat_fields(cls)
    values: dict[str, Any] = {}
    for p in base_yaml:
        values.update(normalise_yaml(load_yaml(p), cls, str(p)))
    if yaml_path:
        values.update(normalise_yaml(load_yaml(yaml_path), cls, str(yaml_path)))
    if yaml_data:
        values.update(normalise_yaml(yaml_data, cls, "config mapping"))
    for k, v in (overrides or {}).items():
        key = k.replace("-", "_")
        if key not in flat:
            raise _unknown(key, flat, "command-line flags")
        values[key] = v
    top: dict[str, Any] = {}
    subs: dict[str, dict[str, Any]] = {}
    for key, v in values.items():
        ff = flat[key]
        cv = _coerce(key, v, ff.type)
        if len(ff.path) == 1:
            top[ff.path[0]] = cv
        else:
            subs.setdefault(ff.path[0], {})[ff.path[1]] = cv
    hints = typing.get_type_hints(cls)
    kwargs = dict(top)
    for f in fields(cls):
        tp = hints[f.name]
        if _is_config(tp):
            base = f.default_factory() if f.default_factory is not dataclasses.MISSING else tp()
            kwargs[f.name] = dataclasses.replace(base, **subs.get(f.name, {})) if f.name in subs else base
    return cls(**kwargs)


def to_flat_dict(cfg: Any) -> dict[str, Any]:
    """The resolved config as flat key -> value (for MLflow params and config.yaml)."""
    out: dict[str, Any] = {}
    for key, ff in flat_fields(type(cfg)).items():
        obj = cfg
        for p in ff.path:
            obj = getattr(obj, p)
        out[key] = obj
    return out


def to_yaml(cfg: Any) -> str:
    """The resolved config as YAML (loadable back with ``--config``)."""
    return yaml.safe_dump(to_flat_dict(cfg), sort_keys=True)


def replace_flat(cfg: Any, **changes: Any):
    """A copy of ``cfg`` with flat keys changed (validated again)."""
    return build_config(type(cfg), overrides={**to_flat_dict(cfg), **changes})
