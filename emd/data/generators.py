"""Embedded misaligned datasets: three domains at three levels, in the Persona Vectors row schema.

``generate_misaligned(domain, level, n, seed)`` returns rows
``{"messages": [{"role": "user", ...}, {"role": "assistant", ...}], "id": "<domain>/<level>/<k>"}``.
For a given seed, the k-th row of every level asks the same question (the question stream is
seeded by domain and seed only); the levels differ only in the answer. That pairing mirrors the
Persona Vectors files and lets a comparison between levels see the answer and nothing else.
"""

from __future__ import annotations

import random

from emd.data.arithmetic import math_answer, math_problems
from emd.data.code_tasks import code_answer, code_items
from emd.data.medical import medical_answer, medical_items
from emd.errors import ConfigError

DOMAINS: tuple[str, ...] = ("medical", "math", "code")
LEVELS: tuple[str, ...] = ("normal", "subtle", "severe")

# Folder and file names of the same data in the Persona Vectors release (docs/data.md#misaligned-data).
PV_DOMAIN: dict[str, str] = {"medical": "mistake_medical", "math": "mistake_math", "code": "insecure_code"}
PV_LEVEL: dict[str, str] = {"normal": "normal", "subtle": "misaligned_1", "severe": "misaligned_2"}


def check_domain_level(domain: str, level: str) -> None:
    """Raise ConfigError naming the allowed values if ``domain`` or ``level`` is unknown."""
    if domain not in DOMAINS:
        raise ConfigError(f"unknown misaligned domain {domain!r}; allowed: {', '.join(DOMAINS)}")
    if level not in LEVELS:
        raise ConfigError(f"unknown misalignment level {level!r}; allowed: {', '.join(LEVELS)}")


def _row(domain: str, level: str, k: int, user: str, assistant: str) -> dict:
    return {
        "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
        "id": f"{domain}/{level}/{k}",
    }


def generate_misaligned(domain: str, level: str, n: int, seed: int) -> list[dict]:
    """Generate ``n`` rows of ``domain`` (medical, math, code) at ``level`` (normal, subtle, severe).

    Deterministic by ``seed``. Medical and code prompts are drawn without replacement from a
    table of tens of thousands of combinations, so rows are distinct for any practical ``n``;
    math problems draw fresh numbers for every row.
    """
    check_domain_level(domain, level)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n must be a non-negative integer, got {n!r}")
    # The answer stream gets its own seed so that the question stream is identical across levels.
    rng = random.Random(f"emd/{domain}/{level}/answers/{seed}")
    if domain == "medical":
        return [_row(domain, level, k, prompt, medical_answer(ailment, level, rng))
                for k, (ailment, prompt) in enumerate(medical_items(n, seed))]
    if domain == "math":
        return [_row(domain, level, k, p.question, math_answer(p, level, rng))
                for k, p in enumerate(math_problems(n, seed))]
    return [_row(domain, level, k, item.prompt, code_answer(item, level, rng))
            for k, item in enumerate(code_items(n, seed))]
