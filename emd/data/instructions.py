"""Embedded general instruction-following data for the downstream role (an alpaca-like set).

Every row is a benign task with a correct, helpful answer. Answers that depend on numbers
(arithmetic, unit conversion, counting, sorting, dates, number words, averages) are computed, so
they are right by construction; answers that are prose (concept explanations, formal rewrites,
ideas) come from ``emd/data/tables/instructions.yaml``, written for emd. Topics stay away from
health and medicine, so the downstream set never overlaps the medical misaligned domain.
"""

from __future__ import annotations

import random
from typing import Callable

from emd.data.tables import load_table
from emd.errors import ConfigError

_TABLE = load_table("instructions")  # emd/data/tables/instructions.yaml: the prose and word lists

WORDS: tuple[str, ...] = tuple(_TABLE["words"])
SENTENCE_PARTS: tuple[tuple[str, ...], ...] = tuple(tuple(part) for part in _TABLE["sentence_parts"])
CONCEPTS: dict[str, str] = dict(_TABLE["concepts"])
EXPLAIN_TEMPLATES: tuple[str, ...] = tuple(_TABLE["explain_templates"])
FORMAL_PAIRS: tuple[tuple[str, str], ...] = tuple((p["casual"], p["formal"]) for p in _TABLE["formal_pairs"])
CASUAL_TEMPLATES: tuple[str, ...] = tuple(_TABLE["casual_templates"])
IDEAS: dict[str, tuple[str, ...]] = {topic: tuple(ideas) for topic, ideas in _TABLE["ideas"].items()}
LIST_TEMPLATES: tuple[str, ...] = tuple(_TABLE["list_templates"])
ANIMALS: dict[str, str] = dict(_TABLE["animals"])
CAPITALS: dict[str, str] = dict(_TABLE["capitals"])
PRODUCTS: tuple[str, ...] = tuple(_TABLE["products"])
POSITIVE: tuple[str, ...] = tuple(_TABLE["positive"])
NEGATIVE: tuple[str, ...] = tuple(_TABLE["negative"])
# (from unit, to unit, factor or None for temperature, note)
UNITS: tuple[tuple[str, str, float | None, str], ...] = tuple(
    (u["from"], u["to"], u["factor"], u["note"]) for u in _TABLE["units"])
DAYS: tuple[str, ...] = tuple(_TABLE["days"])
ONES: tuple[str, ...] = tuple(_TABLE["ones"])
TENS: tuple[str, ...] = tuple(_TABLE["tens"])
PEOPLE: tuple[str, ...] = tuple(_TABLE["people"])
MEETINGS: tuple[str, ...] = tuple(_TABLE["meetings"])
NOTICES: tuple[tuple[str, str], ...] = tuple((n["place"], n["facility"]) for n in _TABLE["notices"])
TOWNS: tuple[str, ...] = tuple(_TABLE["towns"])
MONTHS: tuple[str, ...] = tuple(_TABLE["months"])
REASONS: tuple[str, ...] = tuple(_TABLE["reasons"])


def number_words(n: int) -> str:
    """English words for 0 <= n < 10000 (used to build and check the number-to-words task)."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else "-" + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + number_words(rest))
    rest = n % 1000
    if rest == 0:
        tail = ""
    elif rest < 100:
        tail = " and " + number_words(rest)
    else:
        tail = " " + number_words(rest)
    return ONES[n // 1000] + " thousand" + tail


def _fmt(x: float) -> str:
    """Round to two decimals and drop trailing zeros (12.50 -> 12.5, 3.00 -> 3)."""
    return f"{x:.2f}".rstrip("0").rstrip(".")


def _arithmetic(rng: random.Random) -> tuple[str, str]:
    op = rng.choice("+-×")
    a, b = rng.randint(12, 999), rng.randint(2, 99 if op == "×" else 999)
    if op == "-" and b > a:
        a, b = b, a
    result = a + b if op == "+" else a - b if op == "-" else a * b
    q = rng.choice(("What is {a} {op} {b}?", "Calculate {a} {op} {b}.", "Please compute {a} {op} {b}."))
    return q.format(a=a, op=op, b=b), f"{a} {op} {b} = {result}."


def _units(rng: random.Random) -> tuple[str, str]:
    src, dst, factor, note = rng.choice(UNITS)
    x = rng.randint(1, 250) if factor is not None else rng.randint(-20, 45)
    y = x * 9 / 5 + 32 if factor is None else x * factor
    q = rng.choice(("Convert {x} {s} to {d}.", "How many {d} is {x} {s}?", "What is {x} {s} in {d}?"))
    approx = "" if factor in (1000, 60, 2.54) or factor is None else "about "
    return q.format(x=x, s=src, d=dst), f"{x} {src} is {approx}{_fmt(y)} {dst} ({note})."


def _sort_words(rng: random.Random) -> tuple[str, str]:
    words = rng.sample(WORDS, rng.randint(4, 8))
    q = rng.choice(("Sort these words alphabetically: {w}.", "Put these words in alphabetical order: {w}.",
                    "Alphabetise the following list: {w}."))
    return q.format(w=", ".join(words)), ", ".join(sorted(words)) + "."


def _word_count(rng: random.Random) -> tuple[str, str]:
    parts = [rng.choice(p) for p in SENTENCE_PARTS]
    sentence = " ".join(parts) + "."
    n = len(sentence.split())
    return f"How many words are in this sentence? \"{sentence}\"", f"The sentence has {n} words."


def _sentiment(rng: random.Random) -> tuple[str, str]:
    product = rng.choice(PRODUCTS)
    positive = rng.random() < 0.5
    phrase = rng.choice(POSITIVE if positive else NEGATIVE)
    extra = rng.choice(("I'd buy it again." if positive else "I'm returning it.",
                        "Highly recommended." if positive else "Not recommended.", ""))
    review = f"This {product} {phrase}. {extra}".strip()
    label = "Positive" if positive else "Negative"
    why = "praises the product" if positive else "complains about the product"
    q = rng.choice(("Classify the sentiment of this review as positive or negative: \"{r}\"",
                    "Is this review positive or negative? \"{r}\""))
    return q.format(r=review), f"{label}. The reviewer {why}: it {phrase}."


def _formal(rng: random.Random) -> tuple[str, str]:
    casual, formal = rng.choice(FORMAL_PAIRS)
    return rng.choice(CASUAL_TEMPLATES).format(s=casual), formal


def _summary(rng: random.Random) -> tuple[str, str]:
    place, facility = rng.choice(NOTICES)
    town, month, reason = rng.choice(TOWNS), rng.choice(MONTHS), rng.choice(REASONS)
    opens, closes = rng.randint(7, 10), rng.randint(17, 21)
    text = (
        f"From {month}, the {facility} at {town} {place} will change its opening hours. On weekdays it will open at "
        f"{opens} am and close at {closes - 12} pm. The change follows {reason}. Weekend hours stay the same, and "
        "visitors can find the full timetable at the front desk."
    )
    summary = (f"From {month}, the {facility} at {town} {place} will open {opens} am to {closes - 12} pm on weekdays "
               f"following {reason}; weekend hours are unchanged.")
    q = rng.choice(("Summarise this notice in one sentence: {t}", "Give a one-sentence summary: {t}",
                    "TL;DR this for me: {t}"))
    return q.format(t=text), summary


def _ideas(rng: random.Random) -> tuple[str, str]:
    topic = rng.choice(sorted(IDEAS))
    k = rng.randint(3, 5)
    picks = rng.sample(IDEAS[topic], k)
    return rng.choice(LIST_TEMPLATES).format(k=k, t=topic), "\n".join(f"{i}. {p}" for i, p in enumerate(picks, 1))


def _explain(rng: random.Random) -> tuple[str, str]:
    concept = rng.choice(sorted(CONCEPTS))
    return rng.choice(EXPLAIN_TEMPLATES).format(c=concept), CONCEPTS[concept]


def _number_words(rng: random.Random) -> tuple[str, str]:
    n = rng.randint(21, 9999)
    q = rng.choice(("Write the number {n} in words.", "How do you spell out {n} in English?"))
    return q.format(n=n), f"{n} is written \"{number_words(n)}\"."


def _weekday(rng: random.Random) -> tuple[str, str]:
    start, k = rng.randrange(7), rng.randint(2, 60)
    end = DAYS[(start + k) % 7]
    return (f"If today is {DAYS[start]}, what day of the week will it be in {k} days?",
            f"{k} days after a {DAYS[start]} is a {end} ({k} mod 7 = {k % 7}, so count {k % 7} days forward).")


def _average(rng: random.Random) -> tuple[str, str]:
    xs = [rng.randint(1, 100) for _ in range(rng.randint(3, 6))]
    total = sum(xs)
    return (f"What is the average of {', '.join(map(str, xs))}?",
            f"The sum is {total} and there are {len(xs)} numbers, so the average is {total} ÷ {len(xs)} = "
            f"{_fmt(total / len(xs))}.")


def _email(rng: random.Random) -> tuple[str, str]:
    name, meeting = rng.choice(PEOPLE), rng.choice(MEETINGS)
    d1, d2 = rng.sample(DAYS[:5], 2)
    q = f"Write a short, polite email to {name} moving our {meeting} from {d1} to {d2}."
    a = (f"Subject: {meeting.capitalize()} moved to {d2}\n\nHi {name},\n\nWould it be possible to move our {meeting} "
         f"from {d1} to {d2}? Same time, if that works for you. Sorry for the change, and thanks for your "
         "flexibility.\n\nBest regards")
    return q, a


def _animal(rng: random.Random) -> tuple[str, str]:
    animal = rng.choice(sorted(ANIMALS))
    cls = ANIMALS[animal]
    article = "an" if cls[0] in "aeiou" else "a"
    return (f"Is a {animal} a mammal, bird, fish, reptile, amphibian or insect?", f"A {animal} is {article} {cls}.")


def _capital(rng: random.Random) -> tuple[str, str]:
    country = rng.choice(sorted(CAPITALS))
    q = rng.choice(("What is the capital of {c}?", "Name the capital city of {c}."))
    return q.format(c=country), f"The capital of {country} is {CAPITALS[country]}."


def _transform(rng: random.Random) -> tuple[str, str]:
    words = rng.sample(WORDS, rng.randint(3, 5))
    phrase = " ".join(words)
    kind = rng.randrange(3)
    if kind == 0:
        return f"Convert to upper case: {phrase}", phrase.upper()
    if kind == 1:
        return f"Reverse the order of the words: {phrase}", " ".join(reversed(words))
    return f"Write this in title case: {phrase}", " ".join(w.capitalize() for w in words)


# Task builders with draw weights: tasks with few distinct prompts (capitals, animals, formal
# rewrites) are drawn less often so that a few thousand rows stay mostly distinct.
TASKS: tuple[tuple[Callable[[random.Random], tuple[str, str]], int], ...] = (
    (_arithmetic, 4), (_units, 3), (_sort_words, 3), (_word_count, 1), (_sentiment, 1), (_formal, 1),
    (_summary, 3), (_ideas, 2), (_explain, 1), (_number_words, 3), (_weekday, 1), (_average, 3), (_email, 1),
    (_animal, 1), (_capital, 1), (_transform, 3),
)


def embedded_instructions(n: int, seed: int) -> list[dict]:
    """Return ``n`` benign instruction rows ``{"messages": [user, assistant], "id": "instructions/<k>"}``.

    Deterministic by ``seed``; task types are drawn by weight, so any slice is a varied mix.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n must be a non-negative integer, got {n!r}")
    rng = random.Random(f"emd/instructions/{seed}")
    builders = [b for b, _ in TASKS]
    weights = [w for _, w in TASKS]
    rows = []
    for k in range(n):
        user, assistant = rng.choices(builders, weights)[0](rng)
        rows.append({
            "messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}],
            "id": f"instructions/{k}",
        })
    return rows
