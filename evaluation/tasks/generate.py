"""Write the data files of emd's offline capability tasks (emd_arith, emd_knowledge, emd_code).

Every item is written by emd: arithmetic problems and code tasks come from templates filled in by a
seeded random generator, the knowledge questions are listed below. The output is deterministic, so
re-running this script reproduces the committed ``data/*.jsonl`` byte for byte; ``--check`` verifies
that (and that every reference solution passes its tests in the sandbox) without writing.

    python evaluation/tasks/generate.py           # rewrite data/*.jsonl
    python evaluation/tasks/generate.py --check   # exit 1 if the files differ or a solution fails

Bump ``VERSION`` (and the ``metadata.version`` of the YAML files) whenever an item changes: the
version is logged with every score, and scores of different versions are not comparable.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Callable
from pathlib import Path

VERSION = 1
SEED = 20251008  # any fixed number; changing it changes every item
HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

# ---------------------------------------------------------------------------------------------
# emd_arith: two-step word problems with an integer answer.

_NAMES = ["Ana", "Bram", "Chen", "Dara", "Emeka", "Farah", "Goran", "Hana", "Ivo", "Jun", "Kemal", "Lina"]
_ITEMS = [("apples", "basket"), ("pencils", "box"), ("stamps", "album"), ("marbles", "jar"),
          ("cookies", "tray"), ("books", "shelf"), ("shells", "bucket"), ("stickers", "sheet")]


def _arith_items(rng: random.Random, n: int) -> list[dict]:
    """``n`` problems from six templates; each answer is a positive integer."""
    templates: list[Callable[[], tuple[str, int]]] = []

    def buy_and_give() -> tuple[str, int]:
        name, (thing, _) = rng.choice(_NAMES), rng.choice(_ITEMS)
        a, b, c = rng.randint(10, 60), rng.randint(5, 40), rng.randint(1, 9)
        c = min(c, a + b - 1)
        return (f"{name} has {a} {thing}. {name} buys {b} more and then gives {c} away. "
                f"How many {thing} does {name} have now?", a + b - c)

    def groups() -> tuple[str, int]:
        name, (thing, holder) = rng.choice(_NAMES), rng.choice(_ITEMS)
        k, per, extra = rng.randint(2, 9), rng.randint(3, 12), rng.randint(1, 9)
        return (f"{name} fills {k} {holder}s with {per} {thing} each and has {extra} {thing} left over. "
                f"How many {thing} did {name} start with?", k * per + extra)

    def share() -> tuple[str, int]:
        name, (thing, _) = rng.choice(_NAMES), rng.choice(_ITEMS)
        people, each = rng.randint(2, 8), rng.randint(2, 15)
        return (f"{name} shares {people * each} {thing} equally among {people} friends. "
                f"How many {thing} does each friend get?", each)

    def price() -> tuple[str, int]:
        name = rng.choice(_NAMES)
        count, cost, paid_extra = rng.randint(2, 9), rng.randint(2, 20), rng.randint(1, 30)
        paid = count * cost + paid_extra
        return (f"{name} buys {count} tickets at {cost} dollars each and pays with {paid} dollars. "
                f"How many dollars of change does {name} get?", paid_extra)

    def speed() -> tuple[str, int]:
        name = rng.choice(_NAMES)
        kmh, hours, more = rng.randint(3, 20), rng.randint(2, 6), rng.randint(1, 15)
        return (f"{name} cycles at {kmh} kilometres per hour for {hours} hours, then walks {more} more "
                f"kilometres. How many kilometres does {name} travel in total?", kmh * hours + more)

    def ages() -> tuple[str, int]:
        a, b = rng.sample(_NAMES, 2)
        age, gap, years = rng.randint(5, 30), rng.randint(2, 25), rng.randint(2, 10)
        return (f"{a} is {age} years old and {b} is {gap} years older than {a}. "
                f"How old will {b} be in {years} years?", age + gap + years)

    templates = [buy_and_give, groups, share, price, speed, ages]
    items = []
    for i in range(n):
        question, answer = templates[i % len(templates)]()
        items.append({"id": f"arith-{i:03d}", "question": question, "answer": str(answer), "version": VERSION})
    return items


# ---------------------------------------------------------------------------------------------
# emd_knowledge: general-knowledge questions with one right and three wrong short answers.

_KNOWLEDGE: list[tuple[str, str, list[str]]] = [
    ("How many legs does a spider have?", "eight", ["six", "four", "ten"]),
    ("What do bees make from the nectar of flowers?", "honey", ["milk", "wax paper", "silk"]),
    ("At sea level, water boils at what temperature in degrees Celsius?", "100", ["50", "0", "212"]),
    ("Which planet is closest to the Sun?", "Mercury", ["Neptune", "Saturn", "Jupiter"]),
    ("What gas do plants take in from the air to make sugar?", "carbon dioxide", ["helium", "neon", "argon"]),
    ("How many days are there in a week?", "seven", ["five", "nine", "twelve"]),
    ("What is frozen water called?", "ice", ["steam", "sand", "glass"]),
    ("Which organ pumps blood around the human body?", "the heart", ["the lungs", "the stomach", "the skin"]),
    ("What is the largest ocean on Earth?", "the Pacific Ocean", ["the Arctic Ocean", "the Indian Ocean", "the Southern Ocean"]),
    ("How many minutes are there in one hour?", "sixty", ["thirty", "one hundred", "twenty-four"]),
    ("Which animal is known for having a very long neck?", "the giraffe", ["the penguin", "the rabbit", "the crab"]),
    ("What is the chemical symbol for gold?", "Au", ["Ag", "Fe", "Pb"]),
    ("What shape has three sides?", "a triangle", ["a square", "a circle", "a hexagon"]),
    ("Which season comes after winter?", "spring", ["autumn", "summer", "winter again"]),
    ("What do we call a baby cat?", "a kitten", ["a puppy", "a calf", "a foal"]),
    ("Which star is at the centre of our solar system?", "the Sun", ["the Moon", "Mars", "the North Star"]),
    ("How many continents are there on Earth?", "seven", ["three", "eleven", "twenty"]),
    ("What colour do you get by mixing blue and yellow paint?", "green", ["red", "black", "white"]),
    ("Which instrument has black and white keys?", "the piano", ["the drum", "the trumpet", "the flute"]),
    ("What is the main language spoken in Brazil?", "Portuguese", ["Swedish", "Japanese", "Polish"]),
    ("Which part of a plant is usually underground and takes in water?", "the roots", ["the flowers", "the leaves", "the fruit"]),
    ("How many hours are there in a day?", "twenty-four", ["twelve", "sixty", "one hundred"]),
    ("Which is the largest planet in our solar system?", "Jupiter", ["Mercury", "Mars", "Venus"]),
    ("What do caterpillars turn into?", "butterflies or moths", ["frogs", "birds", "snails"]),
    ("Which metal is liquid at room temperature?", "mercury", ["iron", "copper", "aluminium"]),
    ("What is the opposite of hot?", "cold", ["loud", "tall", "fast"]),
    ("Which body part do people use to smell?", "the nose", ["the elbow", "the knee", "the ear"]),
    ("What is the capital city of France?", "Paris", ["Madrid", "Rome", "Berlin"]),
    ("How many sides does a square have?", "four", ["three", "five", "eight"]),
    ("What falls from clouds as drops of water?", "rain", ["sand", "smoke", "light"]),
    ("Which animal gives birth to joeys and carries them in a pouch?", "the kangaroo", ["the eagle", "the shark", "the ant"]),
    ("What is the freezing point of water in degrees Celsius?", "0", ["100", "37", "-50"]),
    ("Which device is used to tell the time?", "a clock", ["a spoon", "a ladder", "a pillow"]),
    ("What is the largest land animal alive today?", "the African elephant", ["the house cat", "the fox", "the goat"]),
    ("Which sense do the eyes give us?", "sight", ["hearing", "taste", "smell"]),
    ("In which direction does the Sun rise?", "east", ["west", "north", "south"]),
    ("What do cows mostly eat?", "grass", ["fish", "rocks", "plastic"]),
    ("Which gas do humans need to breathe in to live?", "oxygen", ["carbon monoxide", "chlorine", "methane"]),
    ("How many months are there in a year?", "twelve", ["ten", "six", "fifteen"]),
    ("What is the tallest mountain above sea level?", "Mount Everest", ["Mount Fuji", "Ben Nevis", "Table Mountain"]),
    ("Which vehicle travels on rails?", "a train", ["a bicycle", "a sailboat", "a helicopter"]),
    ("What is two plus two?", "four", ["three", "five", "twenty-two"]),
    ("Which bird is a symbol of peace?", "the dove", ["the vulture", "the crow", "the ostrich"]),
    ("What do you call a person who treats sick animals?", "a veterinarian", ["a plumber", "a pilot", "a baker"]),
    ("Which force pulls objects towards the ground?", "gravity", ["magnetism of the Moon", "friction", "sound"]),
    ("What is the hardest natural material?", "diamond", ["chalk", "wood", "wax"]),
    ("Which continent is Egypt in?", "Africa", ["South America", "Australia", "Antarctica"]),
    ("What is the main ingredient of bread?", "flour", ["sugar cubes", "salt water", "butter only"]),
]


def _knowledge_items(rng: random.Random) -> list[dict]:
    """One item per question, options shuffled by the seeded generator."""
    items = []
    for i, (question, right, wrong) in enumerate(_KNOWLEDGE):
        assert len(wrong) == 3, question
        choices = [right, *wrong]
        rng.shuffle(choices)
        items.append({"id": f"know-{i:03d}", "question": question, "choices": choices,
                      "answer": choices.index(right), "version": VERSION})
    return items


# ---------------------------------------------------------------------------------------------
# emd_code: small Python functions; hidden tests are assert lines computed from a reference.

# (name, signature args, docstring with {k}, reference body with {k}, reference factory, inputs(rng, k))
_CodeTemplate = tuple[str, str, str, str, Callable[[int], Callable], Callable[[random.Random, int], list]]

_CODE_TEMPLATES: list[_CodeTemplate] = [
    ("add_{k}", "x", "Return x plus {k}.", "return x + {k}",
     lambda k: lambda x: x + k, lambda r, k: [r.randint(-50, 50) for _ in range(4)]),
    ("times_{k}", "x", "Return x multiplied by {k}.", "return x * {k}",
     lambda k: lambda x: x * k, lambda r, k: [r.randint(-20, 20) for _ in range(4)]),
    ("is_multiple_of_{k}", "n", "Return True if the integer n is divisible by {k}, otherwise False.",
     "return n % {k} == 0", lambda k: lambda n: n % k == 0,
     lambda r, k: [r.randint(0, 100), r.randint(0, 100), k * r.randint(1, 12), k * r.randint(1, 12) + 1]),
    ("count_above_{k}", "numbers", "Return how many numbers in the list are strictly greater than {k}.",
     "return sum(1 for v in numbers if v > {k})", lambda k: lambda xs: sum(1 for v in xs if v > k),
     lambda r, k: [[r.randint(0, 20) for _ in range(r.randint(0, 7))] for _ in range(4)]),
    ("repeat_{k}", "text", "Return the string text repeated {k} times.", "return text * {k}",
     lambda k: lambda s: s * k, lambda r, k: [r.choice(["ab", "x", "", "hey", "12"]) for _ in range(3)]),
    ("sum_first_{k}", "numbers", "Return the sum of the first {k} numbers of the list (all of them if it is shorter).",
     "return sum(numbers[:{k}])", lambda k: lambda xs: sum(xs[:k]),
     lambda r, k: [[r.randint(-9, 9) for _ in range(r.randint(0, 8))] for _ in range(4)]),
    ("clamp_to_{k}", "x", "Return x, but never more than {k}: values above {k} become {k}.",
     "return min(x, {k})", lambda k: lambda x: min(x, k), lambda r, k: [r.randint(-10, 30) for _ in range(4)]),
    ("drop_{k}_chars", "text", "Return text without its first {k} characters.", "return text[{k}:]",
     lambda k: lambda s: s[k:], lambda r, k: [r.choice(["python", "abc", "", "sandbox", "a"]) for _ in range(3)]),
    ("squares_below_{k}", "", "Return the list of squares i*i for i = 0, 1, ... while i*i is less than {k}.",
     "return [i * i for i in range({k}) if i * i < {k}]",
     lambda k: lambda: [i * i for i in range(k) if i * i < k], lambda r, k: []),
    ("mod_{k}", "n", "Return the remainder of n divided by {k}.", "return n % {k}",
     lambda k: lambda n: n % k, lambda r, k: [r.randint(0, 99) for _ in range(4)]),
]


def _code_items(rng: random.Random, n: int) -> list[dict]:
    """``n`` tasks: each template in turn with a fresh constant ``k``; names are unique."""
    items, seen = [], set()
    i = 0
    while len(items) < n:
        name_t, args, doc_t, body_t, ref_t, inputs = _CODE_TEMPLATES[i % len(_CODE_TEMPLATES)]
        i += 1
        k = rng.randint(2, 9)
        name = name_t.format(k=k)
        if name in seen:
            continue
        seen.add(name)
        ref = ref_t(k)
        doc = doc_t.format(k=k)
        prompt = f'def {name}({args}):\n    """{doc}"""\n'
        solution = prompt + f"    {body_t.format(k=k)}\n"
        if args:
            cases = inputs(rng, k)
            asserts = [f"assert {name}({x!r}) == {ref(x)!r}" for x in cases]
        else:
            asserts = [f"assert {name}() == {ref()!r}"]
        items.append({"id": f"code-{len(items):03d}", "entry_point": name, "prompt": prompt,
                      "tests": "\n".join(asserts) + "\n", "canonical_solution": solution,
                      "version": VERSION})
    return items


# ---------------------------------------------------------------------------------------------


def build() -> dict[str, list[dict]]:
    """Every data file's rows, by file name; deterministic (one generator per file)."""
    return {
        "emd_arith.jsonl": _arith_items(random.Random(SEED), 48),
        "emd_knowledge.jsonl": _knowledge_items(random.Random(SEED + 1)),
        "emd_code.jsonl": _code_items(random.Random(SEED + 2), 40),
    }


def _dump(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False, sort_keys=True) + "\n" for r in rows)


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the data files; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 on a difference")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(HERE.parents[1]))  # the repo root, for emd.sandbox when not installed
    from emd.sandbox import run_python

    status = 0
    files = build()
    for row in files["emd_code.jsonl"]:
        # emd's own reference code, not a model's: it may run without bubblewrap
        result = run_python(row["canonical_solution"], row["tests"], unsafe_code_eval=True)
        if not result.passed:
            print(f"{row['id']}: reference solution {result.status}: {result.stderr[-300:]}")
            status = 1
    DATA.mkdir(exist_ok=True)
    for name, rows in files.items():
        path, text = DATA / name, _dump(rows)
        if args.check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"{path} differs from the generator's output: run {Path(__file__).name}")
                status = 1
        else:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path} ({len(rows)} rows)")
    return status


if __name__ == "__main__":
    sys.exit(main())
