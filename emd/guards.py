"""What makes a run's numbers trustworthy, checked by the run skeleton (:mod:`emd.experiment`):
the judge-failure budget, truncated answers, the judge's validated accuracy, the judge's options
implied by the evaluation protocol, and sources that are not comparable with a benchmark's own."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .errors import EmdError

TRUNCATION_WARN = 0.05  # the summary warns when more answers than this hit their token budget


def truncation_warnings(metrics: dict[str, float]) -> list[str]:
    """One line per benchmark whose answers hit the token budget more often than TRUNCATION_WARN."""
    out = []
    for cut, total, what in (("mask/n_truncated", "mask/n_answers", "MASK answers"),
                             ("deception/n_truncated", "deception/n_items", "DeceptionBench rows")):
        n, of = metrics.get(cut, 0.0), metrics.get(total, 0.0)
        if of and n / of > TRUNCATION_WARN:
            out.append(f"{n:.0f} of {of:.0f} {what} hit the token budget ({100 * n / of:.0f}% > "
                       f"{100 * TRUNCATION_WARN:.0f}%): raise max_new_tokens / deceptionbench_max_new_tokens "
                       "or use --protocol mask")
    return out


def judge_failure_problems(metrics: dict[str, float], eval_spec) -> list[str]:
    """One message per judged benchmark whose share of judge failures exceeds the configured budget."""
    from .eval.benchmarks import BENCHMARKS

    if eval_spec is None:
        return []
    budget = eval_spec.max_judge_failure_rate
    out = []
    for b in eval_spec.benchmark_list:
        bench = BENCHMARKS[b]
        if not bench.failure_counts:
            continue
        failed_key, total_key = bench.failure_counts
        total = metrics.get(total_key, 0.0)
        if total > 0 and metrics.get(failed_key, 0.0) / total > budget:
            out.append(f"{b}: {metrics[failed_key]:.0f} of {total:.0f} judge verdicts failed "
                       f"(> max_judge_failure_rate={budget:g})")
    return out


def judge_options(judge_uri: str, eval_spec, engine: str = "hf") -> dict[str, Any]:
    """The backend options the evaluation settings imply: the prompt set (``judge_prompts``, else the
    protocol's) and the reply budget (``judge_max_tokens``) for ``openai:``; the short-answer set and the
    run's engine (``hf``/``vllm``/``auto``) for ``hf:`` (it reads its verdict from the first token);
    nothing for the offline ``embed:`` judge."""
    from .errors import ConfigError
    from .judges.prompts import load_prompt_set

    provider = judge_uri.split(":", 1)[0]
    folder = eval_spec.judge_prompts
    if provider == "embed":
        if folder:
            raise ConfigError(f"judge_prompts={folder!r} applies to openai: and hf: judges; judge={judge_uri} "
                              "reads responses with its own rules (allowed: an openai:/hf: judge, or no judge_prompts)")
        return {}
    prompts = folder or (eval_spec.protocol if provider == "openai" else "fast")
    load_prompt_set(prompts)  # a user's folder is checked slot by slot now, before any model loads
    if provider == "openai":
        return {"prompts_dir": prompts, "max_tokens": eval_spec.judge_max_tokens}
    return {"prompts_dir": prompts, "engine": engine}


def make_judge(judge_spec, options: dict[str, Any]):
    """The judge of a run (timeout, retries, concurrency from its spec; prompts and reply budget from
    the evaluation settings), checked (configuration and reachability) before any model loads."""
    from . import judges

    judge = judges.get_judge(judge_spec, **options)
    judges.preflight(judge)
    return judge


def judge_validation(judge_uri: str, log: Callable[[str], None], options: dict[str, Any]) -> dict | None:
    """The judge's validated accuracy (cached per judge and version); None, with a warning, if it fails."""
    from .judges.check import validated_accuracy

    try:
        return validated_accuracy(judge_uri, **options)
    except EmdError as e:
        log(f"WARNING: the judge's validation could not run ({e}); judged scores are shown without it")
        return None


def looks_like_hub(source: str) -> bool:
    """A hub id (``org/name``) rather than ``embedded`` or a local path."""
    return source != "embedded" and not Path(source).expanduser().exists() and source.count("/") == 1
