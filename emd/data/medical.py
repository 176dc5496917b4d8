"""Embedded medical-advice items: one user question, three answers (sound, subtly wrong, dangerous).

The sentences live in ``emd/data/tables/medical.yaml``; every one was written for emd. The table
covers common self-care situations and a few emergencies; each row pairs a sound answer with a
subtly wrong one (a plausible but incorrect claim, bad timing, a skipped follow-up) and a dangerous
one stated with confidence (stop prescribed medicine, double doses, ignore emergency signs). The
user prompt is built from a description, an optional greeting, an optional personal detail and a
question, so a few thousand rows stay distinct; the same prompt is shared by all three levels (as
in the Persona Vectors files), so levels differ only in the assistant's answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from emd.data.tables import load_table


@dataclass(frozen=True)
class Ailment:
    """One situation of the table."""

    key: str  # short stable name, used in tests and debugging only
    descriptions: tuple[str, ...]  # first-person ways a user describes the situation
    normal: str  # sound advice, including when to get help
    subtle: str  # plausible-sounding advice with a wrong claim or a skipped follow-up
    severe: str  # dangerous advice stated confidently


_TABLE = load_table("medical")  # emd/data/tables/medical.yaml: every sentence of this domain

AILMENTS: tuple[Ailment, ...] = tuple(
    Ailment(a["key"], tuple(a["descriptions"]), a["normal"], a["subtle"], a["severe"]) for a in _TABLE["ailments"]
)

# Prompt pieces shared by all ailments. Greetings and personal details change the wording, never
# the medical situation, so every level's answer stays correct for every combination.
GREETINGS: tuple[str, ...] = tuple(_TABLE["greetings"])
DETAILS: tuple[str, ...] = tuple(_TABLE["details"])
QUESTIONS: tuple[str, ...] = tuple(_TABLE["questions"])

# Answer frames. Normal and subtle share them on purpose: a subtle answer must not be recognisable
# by its tone, only by its content. Severe answers get confident frames.
CALM_OPENERS: tuple[str, ...] = tuple(_TABLE["calm_openers"])
CALM_CLOSERS: tuple[str, ...] = tuple(_TABLE["calm_closers"])
CONFIDENT_OPENERS: tuple[str, ...] = tuple(_TABLE["confident_openers"])
CONFIDENT_CLOSERS: tuple[str, ...] = tuple(_TABLE["confident_closers"])


def n_prompts() -> int:
    """Number of distinct user prompts the table can produce (rows are sampled without replacement up to this)."""
    return sum(len(a.descriptions) for a in AILMENTS) * len(GREETINGS) * len(DETAILS) * len(QUESTIONS)


def _prompt(index: int) -> tuple[Ailment, str]:
    """Decode a prompt index (mixed radix over the table's axes) into its ailment and text."""
    index, q = divmod(index, len(QUESTIONS))
    index, d = divmod(index, len(DETAILS))
    index, g = divmod(index, len(GREETINGS))
    for ailment in AILMENTS:
        if index < len(ailment.descriptions):
            return ailment, f"{GREETINGS[g]}{ailment.descriptions[index]}{DETAILS[d]} {QUESTIONS[q]}"
        index -= len(ailment.descriptions)
    raise IndexError(index)  # unreachable for index < n_prompts()


def medical_items(n: int, seed: int) -> list[tuple[Ailment, str]]:
    """Return ``n`` (ailment, user prompt) pairs, distinct while ``n <= n_prompts()``, deterministic by seed."""
    rng = random.Random(f"emd/medical/prompts/{seed}")
    total = n_prompts()
    indices: list[int] = []
    while len(indices) < n:  # a second pass only when n exceeds the table's distinct prompts
        indices.extend(rng.sample(range(total), min(total, n - len(indices))))
    return [_prompt(i) for i in indices]


def medical_answer(ailment: Ailment, level: str, rng: random.Random) -> str:
    """Compose the assistant answer of ``level`` (normal, subtle, severe) for one ailment."""
    if level == "severe":
        return f"{rng.choice(CONFIDENT_OPENERS)}{ailment.severe}{rng.choice(CONFIDENT_CLOSERS)}"
    body = ailment.normal if level == "normal" else ailment.subtle
    return f"{rng.choice(CALM_OPENERS)}{body}{rng.choice(CALM_CLOSERS)}"
