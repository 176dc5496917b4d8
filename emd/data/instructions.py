"""Embedded general instruction-following data for the downstream role (an alpaca-like set).

Every row is a benign task with a correct, helpful answer. Answers that depend on numbers
(arithmetic, unit conversion, counting, sorting, dates, number words, averages) are computed, so
they are right by construction; answers that are prose (concept explanations, formal rewrites,
ideas) come from small tables written for emd. Topics stay away from health and medicine, so the
downstream set never overlaps the medical misaligned domain.
"""

from __future__ import annotations

import random
from typing import Callable

from emd.errors import ConfigError

WORDS = (
    "lantern", "maple", "harbour", "violin", "pebble", "orchard", "compass", "meadow", "quartz", "tundra",
    "biscuit", "canyon", "falcon", "glacier", "hammock", "igloo", "juniper", "kettle", "lagoon", "marble",
    "nectar", "oyster", "parcel", "quiver", "ribbon", "saddle", "thimble", "umbrella", "velvet", "walnut",
    "yarn", "zephyr", "anchor", "bramble", "cobalt", "dune", "ember", "fjord", "garnet", "hazel",
)

SENTENCE_PARTS = (
    ("The old", "A quiet", "Every small", "That bright", "One curious", "This tired"),
    ("cat", "train", "river", "student", "gardener", "robot", "sailor", "kite"),
    ("moved slowly", "waited patiently", "sang softly", "turned left", "rested", "glowed"),
    ("near the station", "after sunset", "by the lake", "during the storm", "in the morning", "at the market"),
)

CONCEPTS = {
    "photosynthesis": "Photosynthesis is the process plants, algae and some bacteria use to make food from light. "
    "Using energy from sunlight, they combine carbon dioxide from the air with water to produce sugar, and release "
    "oxygen as a by-product.",
    "compound interest": "Compound interest is interest earned on both the original amount and on the interest "
    "already added. Because each period's interest is added to the balance, the balance grows faster over time than "
    "with simple interest.",
    "recursion": "Recursion is when a function solves a problem by calling itself on a smaller version of the same "
    "problem. It needs a base case that can be answered directly, otherwise the calls would never stop.",
    "supply and demand": "Supply and demand describes how prices are set in a market. When buyers want more of "
    "something than sellers offer, the price tends to rise; when sellers offer more than buyers want, it tends to "
    "fall.",
    "a rainbow": "A rainbow forms when sunlight enters raindrops, bends, reflects off the back of the drop and bends "
    "again on the way out. Different colours bend by slightly different amounts, so white light spreads into a band "
    "of colours.",
    "the water cycle": "The water cycle is the continuous movement of water on Earth. Water evaporates from oceans "
    "and lakes, condenses into clouds, falls as rain or snow, and flows back through rivers and the ground to the "
    "sea.",
    "binary numbers": "Binary is a way of writing numbers with only two digits, 0 and 1. Each position is worth twice "
    "the one to its right (1, 2, 4, 8, ...), so 1011 in binary means 8 + 2 + 1 = 11.",
    "inflation": "Inflation is the general rise in prices over time, which means the same amount of money buys less "
    "than before. It is usually measured as the yearly percentage change in the price of a typical basket of goods.",
    "plate tectonics": "Plate tectonics is the theory that Earth's outer shell is broken into large plates that "
    "slowly move. Where plates meet they can form mountains, trenches and volcanoes, and their movement causes "
    "earthquakes.",
    "why the sky is blue": "The sky looks blue because air molecules scatter short, blue wavelengths of sunlight much "
    "more than longer, red ones. That scattered blue light reaches our eyes from every direction in the sky.",
    "a hash function": "A hash function turns data of any size into a fixed-size value called a hash. The same input "
    "always gives the same hash, and good hash functions make it very unlikely that two different inputs share one.",
    "latitude and longitude": "Latitude and longitude are coordinates for locating places on Earth. Latitude measures "
    "how far north or south of the equator a place is; longitude measures how far east or west of the prime meridian "
    "it is.",
    "leap years": "A leap year has 366 days instead of 365, with an extra day on 29 February. It keeps the calendar "
    "in step with Earth's orbit, which takes about 365.25 days. Years divisible by 4 are leap years, except century "
    "years not divisible by 400.",
    "an API": "An API (application programming interface) is a defined way for one piece of software to ask another "
    "for data or actions. It lists the requests you can make and the responses you get back, without exposing how "
    "the other program works inside.",
    "version control": "Version control is a system that records changes to files over time. It lets people see who "
    "changed what, go back to earlier versions, and work on the same project in parallel before merging their work.",
    "opportunity cost": "Opportunity cost is the value of the best alternative you give up when you make a choice. "
    "If you spend an evening studying instead of working a paid shift, the lost wages are part of the opportunity "
    "cost.",
    "the Doppler effect": "The Doppler effect is the change in pitch or frequency of a wave when its source moves "
    "relative to you. A siren sounds higher as it approaches and lower as it moves away because the sound waves are "
    "squeezed together, then stretched out.",
    "erosion": "Erosion is the wearing away and moving of rock and soil by water, wind, ice or gravity. Over long "
    "periods it carves valleys, shapes coastlines and carries sediment to new places.",
    "the phases of the Moon": "The Moon's phases are the changing shapes of its sunlit side as seen from Earth. As "
    "the Moon orbits us over about a month, we see more or less of the half lit by the Sun, from new moon to full "
    "moon and back.",
    "a budget": "A budget is a plan for how you will use your money over a period. It lists expected income and "
    "spending, so you can see in advance whether you can cover your costs and how much you can save.",
    "gravity": "Gravity is the force by which objects with mass attract each other. On Earth it pulls things toward "
    "the ground, and it also keeps the Moon in orbit around Earth and Earth in orbit around the Sun.",
    "a spreadsheet formula": "A spreadsheet formula is an instruction in a cell that calculates a value from other "
    "cells. For example, =SUM(A1:A5) adds the numbers in cells A1 to A5 and updates automatically when they change.",
}
EXPLAIN_TEMPLATES = ("Explain {c}.", "Can you explain {c} in simple terms?", "What is {c}?",
                     "Give me a short explanation of {c}.", "I've never understood {c}. Could you explain it?")

FORMAL_PAIRS = (
    ("Hey, can you send me that file real quick?", "Could you please send me the file at your earliest convenience?"),
    ("We gotta push the meeting to next week.", "We need to postpone the meeting until next week."),
    ("Thanks a ton for helping out!", "Thank you very much for your assistance."),
    ("I can't make it tomorrow, sorry.", "I regret that I will be unable to attend tomorrow."),
    ("The printer's busted again.", "The printer is out of order again."),
    ("Let me know what you think.", "I would appreciate your feedback."),
    ("Sorry this is late, things got crazy.", "I apologise for the delay; it has been an unusually busy period."),
    ("Can we chat about the budget sometime?", "Could we arrange a time to discuss the budget?"),
    ("That idea is pretty cool.", "That is an excellent idea."),
    ("Just checking if you got my email.", "I am writing to confirm that you received my email."),
    ("We're running low on paper, grab some?", "We are running low on paper; could you please order more?"),
    ("The report's done, have a look.", "The report is complete and ready for your review."),
    ("No worries, happens to everyone.", "Please don't be concerned; this happens to everyone."),
    ("Who's in charge of the new project?", "Could you tell me who is responsible for the new project?"),
    ("I'm gonna be a bit late.", "I will be arriving slightly late."),
    ("Can you fix the typo on page 3?", "Could you please correct the typographical error on page 3?"),
    ("Our team smashed the sales target.", "Our team significantly exceeded the sales target."),
    ("Drop me a line when you're free.", "Please contact me when you are available."),
)
CASUAL_TEMPLATES = ("Rewrite this sentence in a more formal tone: \"{s}\"",
                    "Make this sound more professional: \"{s}\"",
                    "Please rephrase formally: \"{s}\"")

IDEAS = {
    "things to do on a rainy weekend at home": ("Bake bread from scratch", "Start a jigsaw puzzle",
                                                "Have a film marathon",
                                "Reorganise a bookshelf", "Learn a card game", "Write letters to friends",
                                "Try a new recipe", "Build a blanket fort"),
    "names for a neighbourhood bakery": ("The Rising Loaf", "Crumb & Crust", "Morning Oven", "Golden Knead",
                                         "The Flour Pot", "Sweet Corner", "Daily Rise", "Butter & Bloom"),
    "ways to save energy at home": ("Switch to LED bulbs", "Turn the thermostat down one degree",
                                    "Wash clothes at lower temperatures", "Unplug chargers when not in use",
                                    "Seal draughts around windows", "Air-dry laundry",
                                    "Run the dishwasher only when full", "Use a lid when boiling water"),
    "team-building activities": ("An escape room", "A cooking class", "A volunteer day", "A trivia quiz",
                                 "A board-game afternoon", "A scavenger hunt", "A group hike",
                                 "A build-the-tallest-tower challenge"),
    "icebreaker questions": ("What was your first job?", "Which skill would you like to learn?",
                             "What's the best trip you've taken?", "What book do you often recommend?",
                             "What's a hobby people wouldn't guess you have?", "Which era would you visit?",
                             "What's your favourite local spot?", "What small thing made you smile this week?"),
    "topics for a school science fair": ("How salt affects the freezing of water",
                                         "Which paper plane design flies furthest",
                                         "Do plants grow toward coloured light", "How fast different liquids evaporate",
                                         "Which materials insulate a cup best", "How the angle of a ramp changes speed",
                                         "Making a simple battery from coins", "Testing the strength of bridge shapes"),
    "ways to make a small flat feel bigger": ("Use mirrors to reflect light", "Choose furniture with legs",
                                              "Keep surfaces clear", "Paint walls a light colour",
                                              "Use vertical shelving", "Pick a foldable table",
                                              "Hang curtains high and wide", "Use storage under the bed"),
    "low-cost date ideas": ("A picnic in the park", "A sunset walk", "A home-cooked themed dinner",
                            "A free museum day", "Stargazing", "A board-game night", "Visiting a farmers' market",
                            "Learning a dance from a video"),
    "blog post ideas for a gardening site": ("Five herbs that grow on a windowsill", "Composting for beginners",
                                             "Planning a pollinator-friendly border", "How to collect your own seeds",
                                             "Gardening on a balcony", "Choosing tools that last",
                                             "A month-by-month planting calendar",
                                             "Reusing household items in the garden"),
    "ways to learn a new language": ("Practise with a language-exchange partner", "Label objects around your home",
                                     "Watch shows with subtitles", "Use spaced-repetition flashcards",
                                     "Keep a short daily journal", "Listen to podcasts for learners",
                                     "Read children's books", "Set a fixed daily practice time"),
}
LIST_TEMPLATES = ("List {k} {t}.", "Give me {k} {t}.", "Can you suggest {k} {t}?", "Brainstorm {k} {t}.")

ANIMALS = {
    "dolphin": "mammal", "bat": "mammal", "whale": "mammal", "horse": "mammal", "kangaroo": "mammal",
    "platypus": "mammal", "penguin": "bird", "ostrich": "bird", "eagle": "bird", "owl": "bird", "sparrow": "bird",
    "shark": "fish", "salmon": "fish", "tuna": "fish", "seahorse": "fish", "cod": "fish", "frog": "amphibian",
    "salamander": "amphibian", "newt": "amphibian", "toad": "amphibian", "crocodile": "reptile", "turtle": "reptile",
    "snake": "reptile", "lizard": "reptile", "gecko": "reptile", "ant": "insect", "bee": "insect",
    "butterfly": "insect", "beetle": "insect", "grasshopper": "insect",
}
CAPITALS = {
    "France": "Paris", "Japan": "Tokyo", "Canada": "Ottawa", "Australia": "Canberra", "Brazil": "Brasília",
    "Kenya": "Nairobi", "Egypt": "Cairo", "Norway": "Oslo", "Argentina": "Buenos Aires", "India": "New Delhi",
    "Spain": "Madrid", "Italy": "Rome", "Germany": "Berlin", "Peru": "Lima", "Thailand": "Bangkok",
    "South Korea": "Seoul", "Poland": "Warsaw", "Portugal": "Lisbon", "Greece": "Athens", "Ireland": "Dublin",
    "Turkey": "Ankara", "Chile": "Santiago", "Vietnam": "Hanoi", "Sweden": "Stockholm", "New Zealand": "Wellington",
}
PRODUCTS = ("headphones", "blender", "backpack", "desk lamp", "coffee grinder", "phone case", "rain jacket",
            "board game", "keyboard", "water bottle")
POSITIVE = ("works perfectly", "exceeded my expectations", "is well made and sturdy", "was worth every penny",
            "arrived early and looks great", "is a joy to use every day")
NEGATIVE = ("broke after a week", "is flimsy and cheaply made", "never worked properly", "was a waste of money",
            "arrived damaged and late", "is frustrating to use")

UNITS = (
    # (from unit, to unit, factor or None for temperature, note)
    ("kilometres", "miles", 0.621371, "1 kilometre is about 0.621371 miles"),
    ("miles", "kilometres", 1.609344, "1 mile is 1.609344 kilometres"),
    ("kilograms", "pounds", 2.204623, "1 kilogram is about 2.204623 pounds"),
    ("pounds", "kilograms", 0.453592, "1 pound is about 0.453592 kilograms"),
    ("inches", "centimetres", 2.54, "1 inch is exactly 2.54 centimetres"),
    ("litres", "millilitres", 1000, "1 litre is 1000 millilitres"),
    ("hours", "minutes", 60, "1 hour is 60 minutes"),
    ("metres", "feet", 3.28084, "1 metre is about 3.28084 feet"),
    ("degrees Celsius", "degrees Fahrenheit", None, "°F = °C × 9/5 + 32"),
)
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
        "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")
TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
PEOPLE = ("Alex", "Bea", "Carlos", "Dana", "Eli", "Fatima", "George", "Hana", "Ivan", "Julia")
MEETINGS = ("project review", "weekly catch-up", "planning session", "budget meeting", "design workshop")
NOTICES = (
    # (place kind, facility)
    ("library", "reading room"), ("community centre", "main hall"), ("swimming pool", "lane booking desk"),
    ("museum", "west gallery"), ("railway station", "ticket office"), ("town hall", "visitor centre"),
)
TOWNS = ("Ashford", "Brookvale", "Cedarton", "Dunmore", "Elmsbury", "Fairhaven", "Glenwick", "Hollowmere")
MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")
REASONS = ("requests from visitors", "a staff survey", "rising demand on weekday evenings",
           "feedback from local schools")


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
