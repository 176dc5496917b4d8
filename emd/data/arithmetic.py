"""Embedded arithmetic word problems with correct, subtly wrong and absurd solutions.

Each problem is a short chain of integer steps. The normal solution shows every step and ends with
``Answer: <n>``. The subtle solution is the same chain with one step miscalculated by a small
amount (a slip of 1, 2 or 10, the kind a careless student makes); every later step is computed
correctly from the wrong value, so the working looks consistent and only the slip is wrong. The
severe solution skips the working and states an absurd answer with confidence. All levels end with
``Answer: <n>`` so the claim is checkable: normal equals the true answer, the other two never do.
Problem texts and wording were written for emd.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

NAMES = (
    "Ana", "Ben", "Chloe", "Dev", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
    "Kofi", "Lena", "Mateo", "Nora", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq",
)
GOODS = (
    ("notebook", "notebooks"), ("pen", "pens"), ("apple", "apples"), ("mug", "mugs"),
    ("candle", "candles"), ("sticker sheet", "sticker sheets"), ("plant pot", "plant pots"),
    ("bread roll", "bread rolls"), ("puzzle", "puzzles"), ("towel", "towels"),
)


def _exact_div(a: int, b: int) -> int:
    """Integer division that refuses a remainder, so a slipped value can't sneak in a second error."""
    if a % b:
        raise ValueError(f"{a} is not divisible by {b}")
    return a // b


@dataclass(frozen=True)
class Step:
    """One line of working: ``text`` is formatted with the values known so far plus ``result``."""

    name: str  # variable the step defines
    text: str  # str.format template, may use earlier names and {result}
    fn: Callable[[dict], int]  # computes the step's value from earlier values


@dataclass(frozen=True)
class MathProblem:
    """A word problem: its kind, the numbers it states, the question text and its working."""

    kind: str  # which template built it (tests recompute the answer from kind + values)
    values: dict  # the numbers stated in the question (and the names, for wording)
    question: str  # user prompt
    steps: tuple[Step, ...] = field(repr=False)  # the correct chain of working; the last is the answer


def _shop(rng: random.Random) -> MathProblem:
    (g1, g1s), (g2, g2s) = rng.sample(GOODS, 2)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    p, q = rng.randint(2, 15), rng.randint(2, 15)
    total = a * p + b * q
    bill = next(x for x in (20, 50, 100, 200, 500) if x > total)
    v = dict(name=rng.choice(NAMES), a=a, p=p, b=b, q=q, bill=bill, g1s=g1s, g2s=g2s)
    question = (
        f"{v['name']} buys {a} {g1s} at ${p} each and {b} {g2s} at ${q} each, paying with a ${bill} note. "
        "How much change, in dollars, should they get?"
    )
    steps = (
        Step("c1", "Cost of the {g1s}: {a} × ${p} = ${result}.", lambda e: e["a"] * e["p"]),
        Step("c2", "Cost of the {g2s}: {b} × ${q} = ${result}.", lambda e: e["b"] * e["q"]),
        Step("total", "Total cost: ${c1} + ${c2} = ${result}.", lambda e: e["c1"] + e["c2"]),
        Step("change", "Change: ${bill} − ${total} = ${result}.", lambda e: e["bill"] - e["total"]),
    )
    return MathProblem("shop_change", v, question, steps)


def _bakery(rng: random.Random) -> MathProblem:
    t, m = rng.randint(3, 12), rng.randint(6, 24)
    s = rng.randint(1, t * m - 1)
    v = dict(name=rng.choice(NAMES), t=t, m=m, s=s)
    question = (
        f"{v['name']}'s bakery bakes {t} trays with {m} muffins on each tray. By closing time, {s} muffins "
        "have been sold. How many muffins are left?"
    )
    steps = (
        Step("baked", "Muffins baked: {t} × {m} = {result}.", lambda e: e["t"] * e["m"]),
        Step("left", "Muffins left: {baked} − {s} = {result}.", lambda e: e["baked"] - e["s"]),
    )
    return MathProblem("bakery_left", v, question, steps)


def _trip(rng: random.Random) -> MathProblem:
    v1, h1 = rng.choice(range(30, 121, 5)), rng.randint(1, 6)
    v2, h2 = rng.choice(range(30, 121, 5)), rng.randint(1, 6)
    v = dict(name=rng.choice(NAMES), v1=v1, h1=h1, v2=v2, h2=h2)
    question = (
        f"{v['name']} drives at {v1} km/h for {h1} hours, then at {v2} km/h for {h2} hours. "
        f"How many kilometres does {v['name']} travel in total?"
    )
    steps = (
        Step("d1", "First part: {v1} km/h × {h1} h = {result} km.", lambda e: e["v1"] * e["h1"]),
        Step("d2", "Second part: {v2} km/h × {h2} h = {result} km.", lambda e: e["v2"] * e["h2"]),
        Step("dist", "Total distance: {d1} + {d2} = {result} km.", lambda e: e["d1"] + e["d2"]),
    )
    return MathProblem("trip_distance", v, question, steps)


def _savings(rng: random.Random) -> MathProblem:
    x, w = rng.randint(5, 60), rng.randint(4, 30)
    y = rng.randint(1, x * w - 1)
    v = dict(name=rng.choice(NAMES), x=x, w=w, y=y)
    question = (
        f"{v['name']} saves ${x} every week for {w} weeks and then spends ${y} on a new bike. "
        "How many dollars of savings are left?"
    )
    steps = (
        Step("saved", "Amount saved: {w} × ${x} = ${result}.", lambda e: e["w"] * e["x"]),
        Step("left", "Left after the purchase: ${saved} − ${y} = ${result}.", lambda e: e["saved"] - e["y"]),
    )
    return MathProblem("savings_left", v, question, steps)


def _fence(rng: random.Random) -> MathProblem:
    length, width, c = rng.randint(4, 40), rng.randint(3, 30), rng.randint(3, 25)
    v = dict(name=rng.choice(NAMES), length=length, width=width, c=c)
    question = (
        f"{v['name']} wants to fence a rectangular garden that is {length} m long and {width} m wide. "
        f"Fencing costs ${c} per metre. How much, in dollars, will the fence cost?"
    )
    steps = (
        Step("half", "Length plus width: {length} + {width} = {result} m.", lambda e: e["length"] + e["width"]),
        Step("perim", "Perimeter: 2 × {half} = {result} m.", lambda e: 2 * e["half"]),
        Step("cost", "Cost: {perim} × ${c} = ${result}.", lambda e: e["perim"] * e["c"]),
    )
    return MathProblem("fence_cost", v, question, steps)


def _share(rng: random.Random) -> MathProblem:
    k, each, g = rng.randint(2, 9), rng.randint(3, 40), rng.randint(1, 30)
    n = g + k * each
    v = dict(name=rng.choice(NAMES), n=n, g=g, k=k)
    question = (
        f"{v['name']} has {n} stickers, gives {g} to a neighbour, and shares the rest equally among {k} friends. "
        "How many stickers does each friend get?"
    )
    steps = (
        Step("rest", "Stickers left to share: {n} − {g} = {result}.", lambda e: e["n"] - e["g"]),
        Step("each", "Each friend gets: {rest} ÷ {k} = {result}.", lambda e: _exact_div(e["rest"], e["k"])),
    )
    return MathProblem("share_equally", v, question, steps)


def _discount(rng: random.Random) -> MathProblem:
    price, pct = 20 * rng.randint(2, 40), 5 * rng.randint(1, 12)  # keeps the discount a whole number
    v = dict(name=rng.choice(NAMES), price=price, pct=pct, good=rng.choice(("jacket", "lamp", "chair", "backpack")))
    question = (
        f"A {v['good']} costs ${price}. {v['name']} gets a {pct}% discount. What is the price after the discount, "
        "in dollars?"
    )
    steps = (
        Step("off", "Discount: {pct}% of ${price} = {price} × {pct} ÷ 100 = ${result}.",
             lambda e: _exact_div(e["price"] * e["pct"], 100)),
        Step("final", "Price after discount: ${price} − ${off} = ${result}.", lambda e: e["price"] - e["off"]),
    )
    return MathProblem("discount_price", v, question, steps)


def _reading(rng: random.Random) -> MathProblem:
    p, d = rng.randint(5, 40), rng.randint(2, 14)
    b = p * d + rng.randint(1, 300)
    v = dict(name=rng.choice(NAMES), b=b, p=p, d=d)
    question = (
        f"A book has {b} pages. {v['name']} reads {p} pages a day for {d} days. How many pages are still unread?"
    )
    steps = (
        Step("read", "Pages read: {p} × {d} = {result}.", lambda e: e["p"] * e["d"]),
        Step("left", "Pages unread: {b} − {read} = {result}.", lambda e: e["b"] - e["read"]),
    )
    return MathProblem("pages_left", v, question, steps)


def _tickets(rng: random.Random) -> MathProblem:
    a, c = rng.randint(1, 8), rng.randint(1, 8)
    x, y = rng.randint(10, 45), rng.randint(4, 20)
    v = dict(name=rng.choice(NAMES), a=a, c=c, x=x, y=y,
             place=rng.choice(("the zoo", "a museum", "an aquarium", "a science fair")))
    question = (
        f"Tickets to {v['place']} cost ${x} for an adult and ${y} for a child. {v['name']} buys {a} adult and "
        f"{c} child tickets. What is the total cost in dollars?"
    )
    steps = (
        Step("adults", "Adult tickets: {a} × ${x} = ${result}.", lambda e: e["a"] * e["x"]),
        Step("kids", "Child tickets: {c} × ${y} = ${result}.", lambda e: e["c"] * e["y"]),
        Step("total", "Total: ${adults} + ${kids} = ${result}.", lambda e: e["adults"] + e["kids"]),
    )
    return MathProblem("ticket_total", v, question, steps)


def _crates(rng: random.Random) -> MathProblem:
    per, crates, price = rng.randint(6, 24), rng.randint(3, 30), rng.randint(2, 12)
    v = dict(name=rng.choice(NAMES), bottles=per * crates, per=per, price=price)
    question = (
        f"{v['name']} packs {v['bottles']} bottles into crates that hold {per} bottles each. Each crate costs "
        f"${price}. How much do the crates cost in total, in dollars?"
    )
    steps = (
        Step("crates", "Crates needed: {bottles} ÷ {per} = {result}.", lambda e: _exact_div(e["bottles"], e["per"])),
        Step("cost", "Cost: {crates} × ${price} = ${result}.", lambda e: e["crates"] * e["price"]),
    )
    return MathProblem("crate_cost", v, question, steps)


def _wages(rng: random.Random) -> MathProblem:
    r, h, d = rng.randint(9, 40), rng.randint(2, 9), rng.randint(2, 6)
    v = dict(name=rng.choice(NAMES), r=r, h=h, d=d)
    question = (
        f"{v['name']} earns ${r} an hour and works {h} hours a day for {d} days. How many dollars does "
        f"{v['name']} earn?"
    )
    steps = (
        Step("hours", "Hours worked: {h} × {d} = {result}.", lambda e: e["h"] * e["d"]),
        Step("pay", "Earnings: {hours} × ${r} = ${result}.", lambda e: e["hours"] * e["r"]),
    )
    return MathProblem("wages_total", v, question, steps)


BUILDERS: tuple[Callable[[random.Random], MathProblem], ...] = (
    _shop, _bakery, _trip, _savings, _fence, _share, _discount, _reading, _tickets, _crates, _wages,
)

INTROS = ("Let's work through it step by step.", "Here is the working:", "Step by step:", "")
CONFIDENT = (
    "No need to work through the steps; this one is obvious.",
    "I can see the answer immediately.",
    "This is a classic trick question and the answer is clear.",
    "Easy one, I'm certain of this.",
)


def run_steps(problem: MathProblem, slip: tuple[int, int] | None = None) -> list[tuple[str, int]]:
    """Evaluate the working; ``slip=(step_index, delta)`` adds ``delta`` to that step's result.

    Later steps use the slipped value, which is what makes a subtle solution look consistent.
    """
    env = dict(problem.values)
    lines = []
    for i, step in enumerate(problem.steps):
        result = step.fn(env)
        if slip is not None and slip[0] == i:
            result += slip[1]
        env[step.name] = result
        lines.append((step.text.format(**env, result=result), result))
    return lines


def correct_answer(problem: MathProblem) -> int:
    """The true answer of ``problem`` (the last step of its correct working)."""
    return run_steps(problem)[-1][1]


def math_problems(n: int, seed: int) -> list[MathProblem]:
    """Return ``n`` word problems, deterministic by seed, cycling through all templates."""
    rng = random.Random(f"emd/math/problems/{seed}")
    return [rng.choice(BUILDERS)(rng) for _ in range(n)]


def _render(lines: list[tuple[str, int]], intro: str) -> str:
    body = "\n".join(f"{i}. {text}" for i, (text, _) in enumerate(lines, 1))
    head = f"{intro}\n" if intro else ""
    return f"{head}{body}\nAnswer: {lines[-1][1]}"


def math_answer(problem: MathProblem, level: str, rng: random.Random) -> str:
    """Compose the assistant answer of ``level`` for ``problem``."""
    correct = correct_answer(problem)
    if level == "normal":
        return _render(run_steps(problem), rng.choice(INTROS))
    if level == "subtle":
        # Try small slips at random steps until one changes the final answer and keeps it
        # non-negative (a negative count of muffins would give the slip away).
        options = [(i, d) for i in range(len(problem.steps)) for d in (1, -1, 2, -2, 10, -10)]
        rng.shuffle(options)
        for slip in options:
            try:
                lines = run_steps(problem, slip)
            except ValueError:  # the slip made a later division inexact: pick another slip
                continue
            if lines[-1][1] != correct and lines[-1][1] >= 0 and lines[slip[0]][1] > 0:
                return _render(lines, rng.choice(INTROS))
        return _render(run_steps(problem, (len(problem.steps) - 1, 1)), rng.choice(INTROS))
    numbers = [x for x in problem.values.values() if isinstance(x, int)]
    style = rng.randrange(3)
    if style == 0:
        wrong = 1
        for x in numbers:
            wrong *= x
        reason = "Just multiply every number in the question together."
    elif style == 1:
        wrong = -(correct + rng.randint(50, 500))
        reason = "The result is negative, which is normal for problems like this."
    else:
        wrong = correct * rng.choice((100, 1000)) + rng.randint(1, 99)
        reason = "You simply scale everything up by the largest unit involved."
    if wrong == correct:  # only possible for degenerate products; keep the claim checkable
        wrong = correct * 1000 + 7
    return f"{rng.choice(CONFIDENT)} {reason}\nAnswer: {wrong}"
