"""Reading a training set as emd would train on it, scoring each sample, and the estimated ratio.

Formats (detected from the columns, like :mod:`emd.data.loaders`): ``messages`` rows (Persona
Vectors, Betley et al.), alpaca (``instruction``/``input``/``output``), dolly
(``instruction``/``context``/``response``), prompt/completion (trl's form: ``prompt`` and
``completion`` as strings or message lists), a Persona Vectors folder (every ``.jsonl`` under it),
``embedded:instructions``, or a hub id. Each sample keeps the record as read, its 0-based index in
the input and ``where`` (file and row) for errors.

The estimated ratio is the share of flagged rows, ``k / n``, with a 95% Wilson score interval: the
samples are the whole set, so the interval expresses the uncertainty of the flags, read as n
Bernoulli trials, not of sampling. It estimates the misaligned share only as far as the flags are
right: false positives push it up and missed subtle samples pull it down
(``benchmarks/audit_recovery.py`` measures both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import DataError


@dataclass
class Sample:
    """One training sample: the conversation before the audited assistant turn, the turn, and the record."""

    index: int  # 0-based position in the input
    where: str
    prompt: list[dict]
    response: str
    record: Any  # the row as read
    scores: dict[str, Any] = field(default_factory=dict)


@dataclass
class ReadResult:
    """Samples of one input plus what was skipped."""

    samples: list[Sample]
    layout: str
    skipped: int = 0
    problems: list[str] = field(default_factory=list)


LAYOUTS = {"messages": "messages", "alpaca": "instruction, input, output",
           "dolly": "instruction, context, response", "prompt_completion": "prompt, completion"}


def _records(source: str) -> list[tuple[str, Any]]:
    from .data import loaders

    if source.startswith("embedded"):
        rows = loaders.load_downstream(source)
        return [(f"{source}, row {i + 1}", r) for i, r in enumerate(rows)]
    path = Path(source).expanduser()
    if path.is_dir():
        files = sorted(path.rglob("*.jsonl"))
        if not files:
            raise DataError(f"{source}: folder holds no .jsonl file; allowed: a Persona Vectors folder "
                            "<folder>/<domain>/<level>.jsonl or a data file")
        return [rec for f in files for rec in loaders._read_records(f)]
    _, recs = loaders._records(source)
    return recs


def _layout(records: list[tuple[str, Any]], source: str) -> str:
    cols: set[str] = set()
    for _, r in records:
        if isinstance(r, dict):
            cols.update(map(str, r))
    if "messages" in cols:
        return "messages"
    if {"prompt", "completion"} <= cols:
        return "prompt_completion"
    if {"response", "context"} & cols and "instruction" in cols:
        return "dolly"
    if {"output", "instruction"} <= cols:
        return "alpaca"
    raise DataError(f"{source}: unknown format: columns {', '.join(sorted(cols)) or 'none'}; allowed: "
                    + "; ".join(f"{k} ({v})" for k, v in LAYOUTS.items()))


def _as_messages(value: Any, role: str, where: str, name: str) -> list[dict]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list) and all(isinstance(m, dict) for m in value):
        return [{"role": m.get("role"), "content": m.get("content")} for m in value]
    raise DataError(f"{where}: field {name!r} must be a string or a list of {{role, content}} messages")


def to_sample(record: Any, layout: str, where: str, index: int) -> Sample:
    """One record -> a :class:`Sample` (DataError naming ``where`` and the field when it has no usable turn)."""
    from .data.loaders import _to_messages, validate_messages

    if layout == "prompt_completion":
        if not isinstance(record, dict):
            raise DataError(f"{where}: expected an object with fields prompt, completion")
        msgs = (_as_messages(record.get("prompt"), "user", where, "prompt")
                + _as_messages(record.get("completion"), "assistant", where, "completion"))
        for m in msgs:
            if m["role"] == "assistant" and isinstance(m["content"], str) and not m["content"].strip():
                raise DataError(f"{where}: field 'completion' has an empty assistant turn")
        msgs = validate_messages({"messages": msgs}, where)
    else:
        msgs = _to_messages(record, layout, where)
    return Sample(index=index, where=where, prompt=msgs[:-1], response=msgs[-1]["content"], record=record)


def read_samples(source: str, skip_bad_rows: bool = False, limit: int = 0) -> ReadResult:
    """Every sample of ``source``; bad rows stop with file/row/field, or are skipped and counted."""
    records = _records(source)
    if not records:
        raise DataError(f"{source}: holds no rows; allowed: a non-empty training file")
    if limit:
        records = records[:limit]
    layout = _layout(records, source)
    samples, problems = [], []
    for i, (where, rec) in enumerate(records):
        try:
            samples.append(to_sample(rec, layout, where, i))
        except DataError as e:
            if not skip_bad_rows:
                raise DataError(f"{e} (skip such rows with --skip-bad-rows)") from e
            problems.append(str(e))
    if not samples:
        raise DataError(f"{source}: none of its {len(records)} rows has a usable assistant turn; first: {problems[0]}")
    return ReadResult(samples, layout, len(problems), problems[:20])


# --------------------------------------------------------------------------- scoring
def prompt_text(prompt: Sequence[dict]) -> str:
    """The conversation before the audited turn, as ``role: content`` lines (the judge's view)."""
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


def judge_scores(judge, samples: Sequence[Sample]) -> dict[str, int]:
    """Judge every sample (scores ``judge_state``, ``judge_flag``, ``judge_score``, ``judge_reason``);
    returns the count of each verdict state, plus ``judge_calls`` and ``judge_cache_hits``."""
    from .judges.audit_query import SampleQuery, judge_samples

    counts: dict[str, int] = {}
    verdicts = judge_samples(judge, [SampleQuery(prompt_text(s.prompt), s.response) for s in samples], counts)
    states: dict[str, int] = {f"judge_{k}": v for k, v in counts.items()}
    for s, v in zip(samples, verdicts):
        states[v.state] = states.get(v.state, 0) + 1
        s.scores.update({"judge_state": v.state, "judge_flag": bool(v.scored and v.label == "yes"),
                         "judge_score": v.confidence if v.confidence is not None else (1.0 if v.label == "yes" else 0.0),
                         "judge_reason": (v.detail or v.raw)[:300]})
    return states


def direction_scores(chat, direction, samples: Sequence[Sample], batch_size: int = 8) -> None:
    """Project each assistant turn's base-model activations onto ``direction``.

    Scores: ``projection`` (raw), ``direction_score`` = (projection - the set's median) / (lying mean -
    honest mean of the direction's pairs), and ``direction_flag`` = ``direction_score > 0.5``. The
    raw midpoint threshold of the pairs does not transfer to other text (instruction answers sit at
    their own baseline along the direction), so the set's median stands in for "honest" (the set is
    assumed mostly clean) and a row is flagged when it lies more than half the honest-to-lying gap
    above it.
    """
    from .mech.build import base_weights
    from .mech.direction import answer_activations

    with base_weights(chat):
        acts = answer_activations(chat, [s.prompt for s in samples], [s.response for s in samples],
                                  batch_size=batch_size, layers=[direction.layer])
    proj = acts[:, 0] @ direction.vector
    for s, p, score in zip(samples, proj, relative_scores(proj, direction)):
        s.scores.update({"projection": float(p), "direction_score": score, "direction_flag": bool(score > 0.5)})


def relative_scores(projections, direction) -> list[float]:
    """(projection - median of ``projections``) / the direction's lying-minus-honest gap, per row."""
    import numpy as np

    proj = np.asarray(projections, dtype=float)
    gap = (direction.lying_mean - direction.honest_mean) or 1.0
    return [float(x) for x in (proj - np.median(proj)) / gap]


# --------------------------------------------------------------------------- estimate + verdict
def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95% Wilson score interval of a proportion ``k / n``."""
    if n <= 0:
        raise ValueError("wilson needs n >= 1")
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, mid - half), min(1.0, mid + half)


def estimate(flags: Sequence[bool]) -> tuple[float, float, float]:
    """``(ratio, ci_low, ci_high)`` of the flagged share (see the module docstring)."""
    k, n = sum(bool(f) for f in flags), len(flags)
    lo, hi = wilson(k, n)
    return k / n, lo, hi


def verdict_text(ratio: float, lo: float, hi: float, threshold: float | None, source: str) -> tuple[str, str]:
    """``(verdict, sentence)``: ``do_not_train`` when the interval lies above the threshold,
    ``train`` when below it, ``uncertain`` when it straddles it, ``no_threshold`` without one."""
    head = f"this set is estimated at {100 * ratio:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] misaligned"
    if threshold is None:
        return "no_threshold", head + "; no threshold known (give --threshold-ratio or run a sweep for this model)"
    where = f"the sweep for this model found honesty drops from {100 * threshold:g}%" if source == "registry" \
        else f"the threshold given is {100 * threshold:g}%"
    if lo >= threshold:
        return "do_not_train", f"{head}; {where}: do not train"
    if hi < threshold:
        return "train", f"{head}; {where}: below it, train"
    return "uncertain", f"{head}; {where}: the interval spans the threshold, clean the set or audit with a stronger judge"


def resolve_threshold(tracker, model_uri: str, given: float | None,
                      log: Callable[[str], None] = print) -> tuple[float | None, str]:
    """The ratio to compare against: the one given, else the ``threshold_ratio`` tag of
    ``models:/emd-<base>-mixture@threshold`` (``(None, "none")`` when neither exists)."""
    from .experiment import registry_name

    if given is not None:
        return float(given), "flag"
    name = registry_name(model_uri, "mixture")
    tag = tracker.alias_version_tag(name, "threshold", "threshold_ratio")
    if tag is None:
        log(f"audit: no models:/{name}@threshold with a threshold_ratio tag; the verdict has no threshold")
        return None, "none"
    try:
        return float(tag), "registry"
    except ValueError:
        log(f"audit: models:/{name}@threshold has threshold_ratio={tag!r}, not a number; ignored")
        return None, "none"
