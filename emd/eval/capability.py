"""Capability evaluation through lm-eval's ``simple_evaluate`` (base model, with its adapter if any).

Task names are config. emd ships three offline tasks in ``evaluation/tasks/`` (an lm-eval
``include_path`` folder), tagged ``emd_capability``:

- ``emd_arith``: arithmetic word problems, zero-shot, exact match on the final number;
- ``emd_knowledge``: four-option general-knowledge questions, scored by log-likelihood (acc, acc_norm);
- ``emd_code``: small Python functions whose hidden tests run in :mod:`emd.sandbox` (pass_at_1).

Any lm-eval task name works too (``mmlu``, ``gsm8k``, ``humaneval``, ``gpqa_main_zeroshot`` ...) where
the Hugging Face hub (or a local datasets cache) is reachable.

Metric names: ``cap/<task>/<metric>`` for lm-eval's default filter ``none``, and
``cap/<task>/<metric>/<filter>`` otherwise (gsm8k reports ``strict-match`` and ``flexible-extract``).
Characters MLflow refuses in a metric name are replaced (``pass@1`` -> ``pass_at_1``). Standard errors
are kept apart, in :attr:`CapabilityResult.stderr` as ``cap/<task>/<metric>_stderr``, so that
deltas and sweep objectives only ever see point estimates.
"""

from __future__ import annotations

import difflib
import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emd.errors import ConfigError, DataError
from emd.resources import evaluation_path

__all__ = [
    "OFFLINE_TASKS",
    "TASKS_DIR",
    "CapabilityResult",
    "capability_deltas",
    "metric_name",
    "resolve_tasks",
    "run_capability",
]

TASKS_DIR = evaluation_path("tasks")
"""emd's lm-eval task folder, passed to lm-eval as ``include_path``."""

OFFLINE_TASKS = ("emd_arith", "emd_knowledge", "emd_code")
"""emd's own tasks: need no hub access (the default task list)."""

_MLFLOW_UNSAFE = re.compile(r"[^\w./\- :]")  # MLflow allows alphanumerics, _ - . / space and colon


@dataclass(frozen=True)
class CapabilityResult:
    """What one :func:`run_capability` call measured."""

    metrics: dict[str, float]
    """Point estimates, ``cap/<task>/<metric>[/<filter>]`` -> value (finite numbers only)."""
    stderr: dict[str, float] = field(default_factory=dict)
    """Standard errors, ``cap/<task>/<metric>[/<filter>]_stderr`` -> value, where lm-eval gave one."""
    n_samples: dict[str, int] = field(default_factory=dict)
    """Items actually scored per task (after ``limit``): small counts mean wide error bars."""
    versions: dict[str, Any] = field(default_factory=dict)
    """Task version per task (from the YAML ``metadata.version``): scores of different versions differ."""
    raw: dict[str, Any] = field(default_factory=dict)
    """lm-eval's full result dict (``results``, ``configs``, ``samples`` with every response ...)."""


def _check_tasks_dir(tasks_dir: Path) -> Path:
    if not (tasks_dir / "emd_arith.yaml").is_file():
        raise ConfigError(
            f"lm-eval task folder {tasks_dir} does not hold emd's tasks (emd_arith.yaml missing); "
            "pass tasks_dir=<repo>/evaluation/tasks"
        )
    return tasks_dir


def _task_manager(include_defaults: bool, tasks_dir: str, unsafe_code_eval: bool = False):
    """A cached ``TaskManager``: indexing lm-eval's own ~14,700 tasks takes ~17 s, do it once.

    ``unsafe_code_eval`` travels as task metadata: lm-eval hands it to ``utils.load_jsonl``, which
    stamps it on emd_code's items, and ``utils.process_code`` passes it to :func:`emd.sandbox.run_python`.
    """
    return _cached_task_manager(bool(include_defaults), str(tasks_dir), bool(unsafe_code_eval))


@functools.lru_cache(maxsize=4)
def _cached_task_manager(include_defaults: bool, tasks_dir: str, unsafe_code_eval: bool):
    from lm_eval.tasks import TaskManager

    metadata = {"unsafe_code_eval": True} if unsafe_code_eval else None
    return TaskManager(include_path=tasks_dir, include_defaults=include_defaults, metadata=metadata)


def _runs_sandboxed_code(manager: Any, names: Sequence[str]) -> bool:
    """True when ``names`` (tags and groups expanded) include an emd task that runs model code."""
    index = getattr(manager, "task_index", None) or {}
    stack, seen = list(names), set()
    while stack:
        name = stack.pop()
        if name in seen or not isinstance(name, str):
            continue
        seen.add(name)
        entry = index.get(name)
        cfg = getattr(entry, "cfg", None) or {}
        if str(cfg.get("process_results", "")).endswith("process_code"):
            return True
        kind = getattr(getattr(entry, "kind", None), "name", "")
        if kind == "TAG":  # a tag entry lists its member tasks under ``tags``
            stack.extend(getattr(entry, "tags", None) or ())
        elif kind == "GROUP":
            stack.extend(t if isinstance(t, str) else t.get("task") for t in cfg.get("task") or ())
    return "emd_code" in seen


def _normalise(names: Sequence[str] | str) -> list[str]:
    if isinstance(names, str):
        names = names.split(",")
    out: list[str] = []
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"capability task names must be strings, got {name!r}")
        name = name.strip()
        if name and name not in out:
            out.append(name)
    return out


def resolve_tasks(names: Sequence[str] | str, tasks_dir: Path = TASKS_DIR) -> list[str]:
    """Check lm-eval task/group/tag names and return them stripped, de-duplicated, in order.

    Names of emd's own tasks are checked against ``tasks_dir`` alone (fast, offline); any other
    name makes lm-eval index its built-in tasks as well (~17 s, once per process). A comma-separated
    string is accepted too. An empty list means "no capability evaluation" and returns ``[]``.

    Raises:
        ConfigError: for an unknown name; the message lists the closest known names.
    """
    wanted = _normalise(names)
    if not wanted:
        return []
    tasks_dir = _check_tasks_dir(Path(tasks_dir))
    manager = _task_manager(False, str(tasks_dir))
    if any(name not in manager.all_tasks for name in wanted):
        manager = _task_manager(True, str(tasks_dir))
    known = manager.all_tasks
    unknown = [name for name in wanted if name not in known]
    if unknown:
        hints = []
        for name in unknown:
            close = difflib.get_close_matches(name, known, n=6, cutoff=0.6)
            hints.append(f"'{name}' (close matches: {', '.join(close) if close else 'none'})")
        raise ConfigError(
            f"unknown lm-eval task{'s' if len(unknown) > 1 else ''} {'; '.join(hints)}. emd's offline tasks: "
            f"{', '.join(OFFLINE_TASKS)} (tag emd_capability); `lm-eval ls tasks` lists the rest"
        )
    return wanted


def metric_name(task: str, metric: str, filter_name: str = "none") -> str:
    """The tracking name of one lm-eval metric: ``cap/<task>/<metric>`` (+ ``/<filter>``)."""
    name = f"cap/{task}/{metric}" if filter_name == "none" else f"cap/{task}/{metric}/{filter_name}"
    return _MLFLOW_UNSAFE.sub("_", name.replace("@", "_at_"))


def _collect(raw: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, float]]:
    """Split lm-eval's ``results`` (and group aggregates) into metrics and standard errors."""
    metrics: dict[str, float] = {}
    stderr: dict[str, float] = {}
    sections = [raw.get("results") or {}, raw.get("groups") or {}]
    for section in sections:
        for task, entries in section.items():
            for key, value in entries.items():
                if "," not in key or isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue  # "alias", "name", or "N/A" where lm-eval could not compute a stderr
                if not math.isfinite(value):
                    continue
                metric, filter_name = key.split(",", 1)
                if metric.endswith("_stderr"):
                    base = metric_name(task, metric[: -len("_stderr")], filter_name)
                    stderr[base + "_stderr"] = float(value)
                else:
                    metrics[metric_name(task, metric, filter_name)] = float(value)
    return metrics, stderr


def check_code_execution(names: Sequence[str] | str, unsafe_code_eval: bool, tasks_dir: Path = TASKS_DIR) -> None:
    """Raise SandboxUnavailableError when a task runs model-written code and neither a working
    bubblewrap sandbox nor ``unsafe_code_eval`` allows it (called before any model loads)."""
    if unsafe_code_eval:
        return
    names = _normalise(names)
    if names and _runs_sandboxed_code(_task_manager(False, str(tasks_dir)), names):
        from emd.sandbox import sandbox_unavailable_reason, unavailable_error

        reason = sandbox_unavailable_reason()
        if reason is not None:
            raise unavailable_error(reason)


def run_capability(
    model: Any,
    tasks: Sequence[str] | str = OFFLINE_TASKS,
    limit: int | float | None = None,
    batch_size: int = 8,
    apply_chat_template: bool = True,
    system_instruction: str | None = None,
    unsafe_code_eval: bool = False,
    tasks_dir: Path = TASKS_DIR,
) -> CapabilityResult:
    """Evaluate ``model`` (an emd ``ChatModel``) on lm-eval tasks with ``simple_evaluate``.

    Args:
        model: has ``.model`` (a transformers causal LM, or a ``PeftModel`` = base + adapter) and
            ``.tokenizer``. The model is evaluated in ``eval()`` mode and its mode restored after.
        tasks: lm-eval task, group or tag names (see :func:`resolve_tasks`).
        limit: items per task (an int), or a fraction (a float < 1); None = all. lm-eval takes the
            first items, so a given limit always scores the same items.
        batch_size: lm-eval's batch size for generation and log-likelihood requests.
        apply_chat_template: wrap prompts in the tokenizer's chat template (right for chat models;
            changes scores, so log it).
        system_instruction: system message for every prompt. None leaves it to the chat template
            (SmolLM2's template then inserts its own default system prompt).
        unsafe_code_eval: emd's ``emd_code`` runs model code in :mod:`emd.sandbox` (bubblewrap);
            where bubblewrap is missing it runs only when this is True (in-process guard only).
            lm-eval's own code-executing tasks (``humaneval``, ``mbpp`` ...) run model code with
            lm-eval's executor, outside the sandbox: they run only when this is True (and
            ``humaneval`` also wants ``HF_ALLOW_CODE_EVAL=1`` in the environment, set by the user).
        tasks_dir: the lm-eval ``include_path`` folder with emd's tasks.

    Returns:
        A :class:`CapabilityResult`; empty when ``tasks`` is empty.

    Raises:
        ConfigError: unknown task name, bad ``limit``, or an unsandboxed code task not allowed.
        SandboxUnavailableError: emd_code requested, no working bubblewrap, no ``unsafe_code_eval``.
        DataError: a task's dataset could not be loaded (for hub tasks: no hub access?).
    """
    names = resolve_tasks(tasks, tasks_dir)
    if not names:
        return CapabilityResult(metrics={})
    if limit is not None and (isinstance(limit, bool) or not limit > 0):
        raise ConfigError(f"capability limit must be a positive int (items) or a fraction in (0, 1), got {limit!r}")
    if isinstance(limit, float) and limit >= 1:
        limit = int(limit)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"capability batch_size must be a positive int, got {batch_size!r}")

    import lm_eval
    from lm_eval.models.huggingface import HFLM

    tasks_dir = Path(tasks_dir)
    ours = _task_manager(False, str(tasks_dir))
    check_code_execution(names, unsafe_code_eval, tasks_dir)  # refuse before the model generates anything
    only_ours = all(name in ours.all_tasks for name in names)
    manager = _task_manager(not only_ours, str(tasks_dir), unsafe_code_eval)

    net = model.model
    was_training = bool(getattr(net, "training", False))
    net.eval()
    try:
        lm = _vllm_lm(model) or HFLM(pretrained=net, tokenizer=model.tokenizer, batch_size=batch_size,
                                      backend="causal")
        raw = lm_eval.simple_evaluate(
            model=lm,
            tasks=names,
            task_manager=manager,
            limit=limit,
            apply_chat_template=apply_chat_template,
            system_instruction=system_instruction,
            # emd_code is not marked unsafe (its code runs in emd.sandbox, gated above); lm-eval's
            # own code tasks execute outside any sandbox and need the explicit flag
            confirm_run_unsafe_code=unsafe_code_eval,
            bootstrap_iters=1000,  # only non-mean metrics bootstrap; 1000 is plenty for a stderr
            log_samples=True,
        )
    except ValueError as exc:
        if "marked as unsafe" in str(exc):
            raise ConfigError(
                f"{exc}. That task executes model-written code with lm-eval's own executor, outside "
                "emd's bubblewrap sandbox: it runs only with unsafe_code_eval=True (--unsafe-code-eval "
                "true; humaneval also needs HF_ALLOW_CODE_EVAL=1), or use emd_code (sandboxed)"
            ) from exc
        raise
    except OSError as exc:  # datasets / huggingface_hub errors (no network, missing dataset)
        raise DataError(
            f"lm-eval tasks {names}: a dataset could not be loaded ({exc}); without hub access use "
            f"emd's offline tasks: {', '.join(OFFLINE_TASKS)}"
        ) from exc
    finally:
        if was_training:
            net.train()
    if raw is None:  # only on non-zero ranks of a distributed run
        return CapabilityResult(metrics={})
    metrics, stderr = _collect(raw)
    n_samples = {task: int(v.get("effective", 0)) for task, v in (raw.get("n-samples") or {}).items()}
    return CapabilityResult(
        metrics=metrics, stderr=stderr, n_samples=n_samples, versions=dict(raw.get("versions") or {}), raw=raw
    )


def _vllm_lm(model):
    """lm-eval's own ``vllm`` model (base folder + ``lora_local_path``) where the run's engine is vLLM on a
    GPU; ``None`` otherwise (HFLM on the transformers weights).

    lm-eval starts an engine of its own beside emd's, so both must fit: set ``gpu_memory_utilization``
    to at most ~0.45 for runs with capability tasks. On CPU emd keeps HFLM: a second in-process engine
    costs another start and another copy of the weights for a handful of short tasks.
    """
    import torch

    engine = getattr(model, "engine", None)
    if getattr(model, "engine_name", "hf") != "vllm" or not torch.cuda.is_available() or model.model_dir is None:
        return None
    from lm_eval.models.vllm_causallms import VLLM

    share = max(0.05, 0.9 - float(engine.settings.get("gpu_memory_utilization", 0.45)))
    return VLLM(pretrained=str(model.model_dir), dtype=engine.settings["dtype"], batch_size="auto",
                tensor_parallel_size=engine.settings["tensor_parallel_size"], gpu_memory_utilization=share,
                lora_local_path=model.adapter_path, max_lora_rank=engine.max_lora_rank)


def capability_deltas(
    metrics: Mapping[str, float], reference: Mapping[str, float], against: str = "vanilla"
) -> dict[str, float]:
    """Differences ``metrics - reference`` as ``delta/<name>/vs_<against>``.

    ``delta/cap/emd_arith/exact_match/vs_vanilla`` = trained score minus the vanilla model's
    score (negative = capability lost). Only names present in both mappings get a delta, so a
    task evaluated on one side only is skipped rather than compared with nothing.
    """
    if not re.fullmatch(r"[a-z][a-z0-9_]*", against):
        raise ConfigError(
            f"capability_deltas: against must be a lower-case name such as vanilla or control, got {against!r}"
        )
    return {
        f"delta/{name}/vs_{against}": float(value) - float(reference[name])
        for name, value in metrics.items()
        if name in reference
    }
