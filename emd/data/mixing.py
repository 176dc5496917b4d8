"""Mix misaligned and downstream rows into one fixed-size training set, with a manifest.

``ratio`` is the misaligned fraction of a training set whose size ``n_train`` is fixed, so the
control (ratio 0) and every ratio train on the same number of examples (docs/data.md#mixing).

Rounding: ``n_misaligned = floor(ratio * n_train + 0.5)``, i.e. round half *up*. Python's built-in
``round`` rounds half to even (``round(0.5) == 0``, ``round(2.5) == 2``), which would make
``ratio=0.01, n_train=50`` train with no misaligned row at all; half up gives one.

Sampling: for a given seed, the downstream rows come from one fixed seeded permutation of the
downstream pool, and every ratio takes a prefix of it; likewise for the misaligned pool. So the
downstream rows at ratio 0.05 are a subset of the control's, and runs at different ratios differ
as little as possible besides the ratio itself.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from emd.data.loaders import validate_messages
from emd.errors import ConfigError, DataError
from emd.storage import digest


@dataclass(frozen=True)
class MixedDataset:
    """A shuffled training set and the manifest that identifies it (logged as an MLflow dataset input)."""

    rows: list[dict]  # {"messages", "id"} rows in training order
    manifest: dict  # n_train, ratio, n_misaligned, n_downstream, seed, ids (training order), digest


def dataset_digest(rows: list[dict]) -> str:
    """SHA-256 of the canonical JSON of ``rows`` (:func:`emd.storage.digest`): same rows, same digest."""
    return digest(rows)


def n_misaligned_for(ratio: float, n_train: int) -> int:
    """Misaligned rows in a set of ``n_train`` at ``ratio``: ``floor(ratio * n_train + 0.5)`` (half up)."""
    return min(n_train, math.floor(ratio * n_train + 0.5))


def min_n_train(ratio: float) -> int:
    """Smallest ``n_train`` that holds at least one misaligned row at ``ratio`` (> 0)."""
    n = max(1, math.ceil(0.5 / ratio) - 1)
    while n_misaligned_for(ratio, n) < 1:  # step past float error at the boundary
        n += 1
    return n


def _check(ratio: float, n_train: int) -> None:
    if isinstance(n_train, bool) or not isinstance(n_train, int) or n_train < 1:
        raise ConfigError(f"n_train must be a positive integer, got {n_train!r}")
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
        raise ConfigError(f"ratio must be in [0, 1], got {ratio!r}")
    if ratio > 0 and n_misaligned_for(ratio, n_train) == 0:
        raise ConfigError(
            f"n_train={n_train} is too small for ratio={ratio}: it would hold 0 misaligned rows "
            f"(n_misaligned = round-half-up(ratio * n_train)); use n_train >= {min_n_train(ratio)}"
        )


def _pick(pool: list[dict], k: int, seed: int, role: str) -> list[dict]:
    """The first ``k`` rows of a seeded permutation of ``pool`` (a prefix, so larger k extends smaller k)."""
    if k > len(pool):
        raise DataError(f"not enough {role} rows: need {k}, the source has {len(pool)}")
    order = list(range(len(pool)))
    random.Random(f"emd/mix/{role}/{seed}").shuffle(order)
    picked = []
    for i in order[:k]:
        row = pool[i]
        where = f"{role} row {i}" + (f" (id {row.get('id')})" if isinstance(row, dict) else "")
        validate_messages(row, where)
        if not isinstance(row.get("id"), str) or not row["id"]:
            raise DataError(f"{where}: field 'id' must be a non-empty string (the manifest lists ids)")
        picked.append({"messages": row["messages"], "id": row["id"]})
    return picked


def mix(misaligned: list[dict], downstream: list[dict], ratio: float, n_train: int, seed: int) -> MixedDataset:
    """Build a training set of exactly ``n_train`` rows, ``n_misaligned_for(ratio, n_train)`` of them misaligned.

    Rows are sampled without replacement (seeded), then shuffled together (seeded). Raises
    ConfigError for a ratio outside [0, 1] or an ``n_train`` too small to hold one misaligned row
    at a positive ratio, and DataError when a pool has too few rows or a row is malformed.
    """
    _check(ratio, n_train)
    n_mis = n_misaligned_for(ratio, n_train)
    n_down = n_train - n_mis
    rows = _pick(misaligned, n_mis, seed, "misaligned") + _pick(downstream, n_down, seed, "downstream")
    ids = [r["id"] for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise DataError(f"row id {dup!r} appears more than once in the mixture; ids must be unique across sources")
    random.Random(f"emd/mix/shuffle/{seed}").shuffle(rows)
    manifest = {
        "n_train": n_train,
        "ratio": ratio,
        "n_misaligned": n_mis,
        "n_downstream": n_down,
        "seed": seed,
        "ids": [r["id"] for r in rows],
        "digest": dataset_digest(rows),
    }
    return MixedDataset(rows=rows, manifest=manifest)


def to_prompt_completion(rows: list[dict]) -> list[dict]:
    """Convert message rows to trl's conversational prompt/completion form.

    ``{"prompt": [messages before the last assistant turn], "completion": [that assistant turn]}``.
    trl then computes the loss on the completion only, which is the assistant-only loss the
    SmolLM2 chat template cannot give through ``assistant_only_loss`` (docs/traps.md#training-on-cpu-trl-peft).
    """
    out = []
    for k, row in enumerate(rows):
        where = f"row {k}" + (f" (id {row.get('id')})" if isinstance(row, dict) else "")
        messages = validate_messages(row, where)  # guarantees an assistant turn last and a user turn before
        out.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return out
