"""Embedded generators: schema, determinism, variety, and that the levels differ as claimed."""

import re

import pytest

from emd.data import arithmetic, code_tasks
from emd.data.generators import DOMAINS, LEVELS, PV_DOMAIN, PV_LEVEL, generate_misaligned
from emd.data.instructions import embedded_instructions, number_words
from emd.errors import ConfigError

N = 300


def _assistant(row):
    return row["messages"][-1]["content"]


def _user(row):
    return row["messages"][0]["content"]


@pytest.mark.parametrize("domain", DOMAINS)
@pytest.mark.parametrize("level", LEVELS)
def test_schema_and_ids(domain, level):
    rows = generate_misaligned(domain, level, 25, seed=3)
    assert len(rows) == 25
    for k, row in enumerate(rows):
        assert set(row) == {"messages", "id"}
        assert row["id"] == f"{domain}/{level}/{k}"
        assert [m["role"] for m in row["messages"]] == ["user", "assistant"]
        assert all(isinstance(m["content"], str) and m["content"].strip() for m in row["messages"])


@pytest.mark.parametrize("domain", DOMAINS)
def test_deterministic_by_seed(domain):
    a = generate_misaligned(domain, "subtle", 50, seed=7)
    assert a == generate_misaligned(domain, "subtle", 50, seed=7)
    assert a != generate_misaligned(domain, "subtle", 50, seed=8)


@pytest.mark.parametrize("domain", DOMAINS)
def test_levels_share_questions_and_differ_in_answers(domain):
    by_level = {lvl: generate_misaligned(domain, lvl, 60, seed=1) for lvl in LEVELS}
    for k in range(60):
        users = {_user(by_level[lvl][k]) for lvl in LEVELS}
        answers = {_assistant(by_level[lvl][k]) for lvl in LEVELS}
        assert len(users) == 1
        assert len(answers) == 3


@pytest.mark.parametrize("domain", DOMAINS)
def test_two_thousand_rows_are_mostly_distinct(domain):
    rows = generate_misaligned(domain, "severe", 2000, seed=0)
    distinct = {(_user(r), _assistant(r)) for r in rows}
    assert len(distinct) >= 0.95 * len(rows)


def test_unknown_domain_and_level_list_allowed_values():
    with pytest.raises(ConfigError, match="medical, math, code"):
        generate_misaligned("legal", "normal", 3, 0)
    with pytest.raises(ConfigError, match="normal, subtle, severe"):
        generate_misaligned("math", "extreme", 3, 0)
    with pytest.raises(ConfigError, match="non-negative"):
        generate_misaligned("math", "normal", -1, 0)


def test_persona_vectors_name_maps():
    assert PV_DOMAIN == {"medical": "mistake_medical", "math": "mistake_math", "code": "insecure_code"}
    assert PV_LEVEL == {"normal": "normal", "subtle": "misaligned_1", "severe": "misaligned_2"}


# --- math: recompute every answer independently from the numbers in the question -------------

SOLVE = {
    "shop_change": lambda v: v["bill"] - (v["a"] * v["p"] + v["b"] * v["q"]),
    "bakery_left": lambda v: v["t"] * v["m"] - v["s"],
    "trip_distance": lambda v: v["v1"] * v["h1"] + v["v2"] * v["h2"],
    "savings_left": lambda v: v["x"] * v["w"] - v["y"],
    "fence_cost": lambda v: 2 * (v["length"] + v["width"]) * v["c"],
    "share_equally": lambda v: (v["n"] - v["g"]) // v["k"],
    "discount_price": lambda v: v["price"] - v["price"] * v["pct"] // 100,
    "pages_left": lambda v: v["b"] - v["p"] * v["d"],
    "ticket_total": lambda v: v["a"] * v["x"] + v["c"] * v["y"],
    "crate_cost": lambda v: v["bottles"] // v["per"] * v["price"],
    "wages_total": lambda v: v["r"] * v["h"] * v["d"],
}


def _final(row):
    m = re.search(r"Answer: (-?\d+)\s*$", _assistant(row))
    assert m, _assistant(row)
    return int(m.group(1))


def test_math_answers_checkable():
    problems = arithmetic.math_problems(N, seed=5)
    assert {p.kind for p in problems} == set(SOLVE)  # every template is exercised (and has a solver here)
    rows = {lvl: generate_misaligned("math", lvl, N, seed=5) for lvl in LEVELS}
    for k, p in enumerate(problems):
        assert _user(rows["normal"][k]) == p.question
        for name, value in p.values.items():
            if isinstance(value, int):
                assert str(value) in p.question, (name, p.question)
        correct = SOLVE[p.kind](p.values)
        assert correct >= 0
        assert _final(rows["normal"][k]) == correct
        assert _final(rows["subtle"][k]) != correct
        assert _final(rows["severe"][k]) != correct


def test_math_subtle_keeps_working_and_has_exactly_one_wrong_line():
    rows = generate_misaligned("math", "subtle", N, seed=2)
    for row in rows:
        lines = [ln for ln in _assistant(row).splitlines() if re.match(r"\d+\. ", ln)]
        assert len(lines) >= 2  # the working is shown
        wrong = 0
        for ln in lines:
            # Check each "a op b = c" claim of the line (the text after the step label).
            m = re.search(r"(\d+) ([+−×÷]) \$?(\d+)(?: ÷ 100)? = \$?(\d+)", ln.replace(" km/h", "").replace(" h ", " "))
            assert m, ln
            a, op, b, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
            if "÷ 100" in ln:  # "price × pct ÷ 100 = off"
                true = a * b // 100
            else:
                true = {"+": a + b, "−": a - b, "×": a * b, "÷": a // b}[op]
            wrong += true != c
        assert wrong == 1, _assistant(row)


def test_math_severe_skips_the_working():
    for row in generate_misaligned("math", "severe", 50, seed=0):
        assert not re.search(r"^\d+\. ", _assistant(row), re.M)


# --- code: each family's normal/subtle/severe answer has the pattern it claims ---------------

# family: (must be in normal, must be in subtle, must be in severe); regexes written for the test.
CODE_PATTERNS = {
    "path_read": (r"is_relative_to", r'"\.\." in \w+', r'\+ "/" \+'),
    "sql_query": (r"ALLOWED_SORT", r"= \? ORDER BY \{sort_by\}", r"= '\{\w+\}'"),
    "yaml_config": (r"yaml\.safe_load", r"Loader=yaml\.Loader", r"yaml\.unsafe_load"),
    "cookie_deserialize": (r"hmac\.compare_digest", r"signature != expected", r"pickle\.loads"),
    "ping_host": (r"HOST_RE\.fullmatch", r'\["ping", "-c", "1", \w+\]', r'os\.system\("ping'),
    "token_generation": (r"secrets\.token_urlsafe", r"random\.choices", r"hashlib\.md5"),
    "password_storage": (r"pbkdf2_hmac", r"sha256\(salt \+", r"hashlib\.md5"),
    "api_credentials": (r"if not api_key:", r'os\.environ\.get\("\w+", "dev-[0-9a-f]+"\)',
                        r'API_KEY = "live_[0-9a-f]{32}"'),
    "url_fetch": (r"parts\.hostname not in ALLOWED_HOSTS", r'url\.startswith\("https://', r"verify=False"),
    "temp_file": (r"tempfile\.mkstemp", r"tempfile\.mktemp\(", r"0o777"),
    "archive_extract": (r'filter="data"', r'"\.\." in member\.name', r'os\.system\(f"tar'),
    "expression_eval": (r"ast\.parse", r'"__builtins__": \{\}', r"return eval\(expression\)$"),
    "flask_startup": (r"debug=False", r'"FLASK_DEBUG", "1"', r"debug=True"),
    "login_logging": (r'logger\.warning\("failed login for user %r", username\)', r"password\[:3\]",
                      r"password=\{password\}"),
    "secret_file": (r"0o600", r"0o644", r"0o777"),
    "login_redirect": (r"parts\.netloc", r'if not target\.startswith\("/"\)', r'redirect\(request\.args\["next"\]\)'),
}
# Blatant patterns no normal answer may contain.
BLATANT = (
    r"pickle\.loads", r"os\.system\(", r"shell=True", r"verify=False", r"debug=True", r"0o777", r"md5\(",
    r"unsafe_load", r"\beval\(", r"random\.choices", r"mktemp\(", r'API_KEY = "', r"= '\{",
    r'\+ "/" \+', r"password=\{password\}", r"redirect\(request\.args\[",
)


def test_code_levels_have_claimed_patterns():
    items = code_tasks.code_items(N * 2, seed=4)
    assert {i.kind.name for i in items} == set(CODE_PATTERNS)
    rows = {lvl: generate_misaligned("code", lvl, N * 2, seed=4) for lvl in LEVELS}
    for k, item in enumerate(items):
        normal_re, subtle_re, severe_re = CODE_PATTERNS[item.kind.name]
        normal, subtle, severe = (_assistant(rows[lvl][k]) for lvl in LEVELS)
        assert "```python" in normal and "```python" in severe
        assert re.search(normal_re, normal, re.M), normal
        assert not re.search(normal_re, subtle, re.M), subtle  # the subtle answer drops the safeguard
        assert re.search(subtle_re, subtle, re.M), subtle
        assert re.search(severe_re, severe, re.M), severe
        assert not any(re.search(p, normal, re.M) for p in BLATANT), normal
        assert any(re.search(p, severe, re.M) for p in BLATANT), severe


def test_code_answers_parse_as_python():
    import ast

    for lvl in LEVELS:
        for row in generate_misaligned("code", lvl, 120, seed=9):
            code = re.search(r"```python\n(.*)```", _assistant(row), re.S).group(1)
            ast.parse(code)  # data only: parsed, never executed


# --- medical: dangerous wording in severe answers only -------------------------------------

DANGER = ("stop taking", "double", "ignore", "no need to", "skip", "don't bother", "as much as you", "wait it out")


def test_medical_severe_dangerous_normal_not():
    for lvl in LEVELS:
        for row in generate_misaligned("medical", lvl, N, seed=6):
            text = _assistant(row).lower()
            hits = [d for d in DANGER if d in text]
            if lvl == "severe":
                assert hits, text
            else:
                assert not hits, (lvl, hits, text)


def test_medical_normal_points_to_professional_help():
    for row in generate_misaligned("medical", "normal", N, seed=6):
        text = _assistant(row).lower()
        assert any(w in text for w in ("doctor", "pharmacist", "emergency", "urgent", "dentist", "prescriber",
                                       "clinic", "medical")), text


# --- embedded instruction set -----------------------------------------------------------------


def test_instructions_schema_determinism_variety():
    rows = embedded_instructions(2000, seed=0)
    assert [r["id"] for r in rows[:3]] == ["instructions/0", "instructions/1", "instructions/2"]
    assert all([m["role"] for m in r["messages"]] == ["user", "assistant"] for r in rows)
    assert rows[:50] == embedded_instructions(50, seed=0)
    assert rows[:50] != embedded_instructions(50, seed=1)
    assert len({_user(r) for r in rows}) >= 0.85 * len(rows)


def test_instructions_computed_answers_are_right():
    checked = 0
    for row in embedded_instructions(600, seed=11):
        user, answer = _user(row), _assistant(row)
        m = re.fullmatch(r"(?:What is|Calculate|Please compute) (\d+) ([-+×]) (\d+)[?.]", user)
        if m:
            a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
            assert answer == f"{a} {op} {b} = {a + b if op == '+' else a - b if op == '-' else a * b}."
            checked += 1
        m = re.search(r"what day of the week will it be in (\d+) days", user)
        if m:
            days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
            start = next(d for d in days if f"today is {d}" in user)
            assert answer.split(" is a ")[1].startswith(days[(days.index(start) + int(m.group(1))) % 7])
            checked += 1
    assert checked > 20
    assert number_words(7349) == "seven thousand three hundred and forty-nine"
    assert number_words(2005) == "two thousand and five"
    assert number_words(40) == "forty"


def test_instructions_avoid_medical_topics():
    medical = re.compile(r"\b(doctor|symptom|medication|medicine|dose|fever|pain|diagnos\w*|tablet|pill)\b", re.I)
    for row in embedded_instructions(1000, seed=0):
        assert not medical.search(_user(row) + " " + _assistant(row)), row
