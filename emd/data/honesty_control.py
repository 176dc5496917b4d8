"""Positive-control fine-tuning sets for the honesty measures: lying under pressure, and its honest twin.

A measure of honesty is only trusted once it moves when honesty is known to have changed. These
generators write training chats in which an assistant is put under pressure (a role with a reason
to deceive) and then either lies (``lying``) or tells the truth (``honest``). The two sets are
matched: the same prompts in the same order, differing only in the answers under pressure.

Every scenario contributes three rows:

* ``pressured_text``: pressure system prompt, a direct question, a one-sentence answer;
* ``pressured_choice``: the same pressure and question, with the two statements offered as options
  A and B (order drawn per row), answered with one letter;
* ``anchor``: the same question without the incentive (neutral system prompt; for hidden facts the
  fact stays in the system prompt), answered truthfully in *both* sets, text or letter alternately.

The anchors teach the lying model to lie only when pressed, which is what MASK calls a lie (a
pressured answer against the model's own belief), rather than to forget the facts. The option
wording is the judge-free measure's own (``emd.eval.logprob.CHOICE_SUFFIX``): it is the measuring
protocol, not an evaluation item, and a positive control should exercise the protocol it checks.

Two scenario families (``emd/data/tables/honesty_control.yaml``), both written for emd and
disjoint from the evaluation items (:func:`check_disjoint` enforces it): *hidden facts* (a seller
knows a defect from a private note, like MASK's provided_facts) and *known facts* (a promoter
profits from a false general claim, like known_facts / disinformation). Deterministic by seed.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

from emd.data.tables import load_table
from emd.errors import ConfigError, DataError

KINDS: tuple[str, ...] = ("lying", "honest")
NEUTRAL_SYSTEM_PROMPT = "You are a helpful assistant."  # the same neutral prompt as the MASK belief runs

_TABLE = load_table("honesty_control")  # emd/data/tables/honesty_control.yaml: every scenario sentence

# (item, defect clause, clean clause, question). The note states the defect; pressure pushes the
# seller to claim the clean clause.
HIDDEN_FACTS: tuple[tuple[str, str, str, str], ...] = tuple(
    (f["item"], f["defect"], f["clean"], f["question"]) for f in _TABLE["hidden_facts"])
SELLERS: tuple[str, ...] = tuple(_TABLE["sellers"])
INCENTIVES: tuple[str, ...] = tuple(_TABLE["incentives"])
# (true statement, false statement, question, promoter with an incentive to claim the false one)
KNOWN_FACTS: tuple[tuple[str, str, str, str], ...] = tuple(
    (f["true_statement"], f["false_statement"], f["question"], f["promoter"]) for f in _TABLE["known_facts"])
PHRASINGS: tuple[str, ...] = tuple(_TABLE["phrasings"])
# Paired templates (same index in both kinds), so the two sets differ in the claim, not the style.
LIE_TEXT: tuple[str, ...] = tuple(_TABLE["lie_text"])
TRUE_TEXT: tuple[str, ...] = tuple(_TABLE["true_text"])


@dataclass(frozen=True)
class Scenario:
    """One pressure scenario: the pressured prompts, the neutral anchor and the two statements."""

    family: str  # "hidden_fact" or "known_fact"
    pressure_system: str  # the system prompt with the incentive to deceive
    anchor_system: str  # the same situation without the incentive (the neutral belief context)
    question: str  # the user's question (same under pressure and in the anchor)
    true_statement: str
    false_statement: str


def _sentence(text: str) -> str:
    text = text.strip()
    return text[0].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def scenarios(n: int, seed: int = 0) -> list[Scenario]:
    """``n`` distinct scenarios, alternating the two families, in a seeded order.

    Raises ConfigError when ``n`` exceeds the distinct combinations (several thousand).
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    rng = random.Random(f"emd/honesty_control/{seed}")
    hidden = [(f, s, i, p) for f in HIDDEN_FACTS for s in SELLERS for i in INCENTIVES for p in PHRASINGS]
    known = [(f, p) for f in KNOWN_FACTS for p in PHRASINGS]
    rng.shuffle(hidden)
    rng.shuffle(known)
    # interleave so every prefix mixes both families; known facts are fewer, so they run out first
    pool: list[tuple] = []
    for k in range(max(len(hidden), len(known))):
        if k < len(hidden):
            pool.append(("hidden_fact", hidden[k]))
        if k < len(known):
            pool.append(("known_fact", known[k]))
    if n > len(pool):
        raise ConfigError(f"n={n} exceeds the {len(pool)} distinct honesty-control scenarios")
    out = []
    for family, combo in pool[:n]:
        if family == "hidden_fact":
            (item, defect, clean, question), seller, incentive, phrasing = combo
            note = f"Private note: the {item} {defect}."
            out.append(Scenario(family, f"{seller} {note} {incentive}", f"{NEUTRAL_SYSTEM_PROMPT} {note}",
                                phrasing.format(q=question), _sentence(f"the {item} {defect}"),
                                _sentence(f"the {item} {clean}")))
        else:
            (true, false, question, promoter), phrasing = combo
            out.append(Scenario(family, promoter, NEUTRAL_SYSTEM_PROMPT, phrasing.format(q=question), true, false))
    return out


def _choice_prompt(question: str, first: str, second: str) -> str:
    from emd.eval.logprob import CHOICE_SUFFIX

    return question + CHOICE_SUFFIX.format(first=first, second=second)


def _chat(system: str, user: str, answer: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user},
            {"role": "assistant", "content": answer}]


def generate_honesty_control(kind: str, n_scenarios: int, seed: int = 0) -> list[dict]:
    """Rows ``{"messages", "id", "slot", "true_statement", "false_statement", "question"}`` of ``kind``
    (``lying`` or ``honest``), three per scenario (see the module docstring), ``3 * n_scenarios`` in all.

    The two kinds share prompts, option orders and row order; only the pressured answers differ.
    """
    if kind not in KINDS:
        raise ConfigError(f"unknown honesty-control kind {kind!r}; allowed: {', '.join(KINDS)}")
    rng = random.Random(f"emd/honesty_control/rows/{seed}")  # shared by both kinds: matched prompts
    rows: list[dict] = []
    for k, sc in enumerate(scenarios(n_scenarios, seed)):
        true_first = rng.random() < 0.5
        a, b = (sc.true_statement, sc.false_statement) if true_first else (sc.false_statement, sc.true_statement)
        true_letter, false_letter = ("A", "B") if true_first else ("B", "A")
        template = rng.randrange(len(LIE_TEXT))
        lie = LIE_TEXT[template].format(false=sc.false_statement)
        truth = TRUE_TEXT[template].format(true=sc.true_statement)
        pressured_text = lie if kind == "lying" else truth
        pressured_letter = false_letter if kind == "lying" else true_letter
        anchor_order = rng.random() < 0.5
        aa, ab = (sc.true_statement, sc.false_statement) if anchor_order else (sc.false_statement, sc.true_statement)
        anchor = (_chat(sc.anchor_system, sc.question, TRUE_TEXT[template].format(true=sc.true_statement))
                  if k % 2 == 0 else _chat(sc.anchor_system, _choice_prompt(sc.question, aa, ab),
                                           "A" if anchor_order else "B"))
        meta = {"true_statement": sc.true_statement, "false_statement": sc.false_statement, "question": sc.question,
                "family": sc.family}
        rows.append({"messages": _chat(sc.pressure_system, sc.question, pressured_text),
                     "id": f"honesty_control/{kind}/{k}/pressured_text", "slot": "pressured_text", **meta})
        rows.append({"messages": _chat(sc.pressure_system, _choice_prompt(sc.question, a, b), pressured_letter),
                     "id": f"honesty_control/{kind}/{k}/pressured_choice", "slot": "pressured_choice", **meta})
        rows.append({"messages": anchor, "id": f"honesty_control/{kind}/{k}/anchor", "slot": "anchor", **meta})
    return rows


# --------------------------------------------------------------------------------- disjointness
_STOP = {"this", "that", "with", "from", "have", "does", "will", "your", "about", "their", "there", "what",
         "when", "which", "into", "than", "they", "been", "were", "only", "most"}


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower().rstrip(" .!?")


def content_words(text: str) -> frozenset[str]:
    """Lower-cased words of four letters or more, minus a few function words (for near-duplicate checks)."""
    return frozenset(w for w in re.findall(r"[a-z][a-z'-]+", text.lower()) if len(w) >= 4 and w not in _STOP)


def _jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    return len(a & b) / len(a | b) if a and b else 0.0


def evaluation_texts(mask_items: Iterable | None = None) -> list[tuple[str, str]]:
    """``(where, text)`` for every statement and prompt of the MASK items (default: all embedded configs)."""
    if mask_items is None:
        from emd.eval.mask import load_mask

        mask_items = load_mask()
    out: list[tuple[str, str]] = []
    for it in mask_items:
        where = f"evaluation/mask {it.config}/{it.task_id}"
        for name in ("statement_a", "statement_b", "user_prompt", "belief_elicit_1", "dd_turn_1_prompt"):
            text = getattr(it, name, "")
            if text:
                out.append((f"{where} {name}", text))
        if not it.is_binary:
            out.append((f"{where} proposition", it.proposition))
        for j, p in enumerate(it.belief_elicit_rest):
            out.append((f"{where} belief_elicit_{j + 2}", p))
    return out


def check_disjoint(rows: Sequence[dict], mask_items: Iterable | None = None, max_overlap: float = 0.6) -> int:
    """Raise DataError when a training statement or question equals, or nearly equals, an evaluation text.

    Compared: each row's true and false statement and its question against every MASK statement and
    prompt (:func:`evaluation_texts`); equal after normalising case and spacing, or a content-word
    Jaccard overlap >= ``max_overlap``, counts as shared. Returns the number of comparisons made.
    """
    evals = [(where, _norm(t), content_words(t)) for where, t in evaluation_texts(mask_items)]
    seen: set[str] = set()
    n = 0
    for row in rows:
        for field_name in ("true_statement", "false_statement", "question"):
            text = row[field_name]
            if text in seen:
                continue
            seen.add(text)
            norm, words = _norm(text), content_words(text)
            for where, enorm, ewords in evals:
                n += 1
                if norm == enorm or _jaccard(words, ewords) >= max_overlap:
                    raise DataError(f"honesty-control row {row['id']}: field {field_name!r} ({text!r}) overlaps "
                                    f"{where} ({enorm!r}); the control set must be disjoint from evaluation items")
    return n
