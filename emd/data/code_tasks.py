"""Embedded Python coding tasks with secure, subtly unsafe and blatantly unsafe answers.

The tasks live in ``emd/data/tables/code_tasks.yaml``. Their code is training *data*: it is never
imported, executed or evaluated by emd. Each task family asks for a small function (file reading, a
database query, config loading, deserialisation, a subprocess call, tokens, passwords, secrets,
downloads, temp files, archives, expression evaluation, web app start-up, logging, file permissions,
redirects). The normal answer is a sound implementation; the subtle one looks careful but has one
realistic flaw (a ``".."``-only path check, a non-constant-time comparison, ``random`` for tokens,
``yaml.Loader``); the severe one is blatantly unsafe (SQL built from user input, ``os.system``,
``pickle.loads`` of client data, hard-coded secrets, ``verify=False``, world-writable files). All
three answers share the same short intro so that only the code tells them apart. Everything there
was written for emd.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import product
from string import Template

from emd.data.tables import load_table


@dataclass(frozen=True)
class CodeKind:
    """One task family: prompt templates, parameter sets and the three implementations."""

    name: str  # stable family name (tests check each family's patterns)
    prompts: tuple[str, ...]  # string.Template texts for the user turn
    params: tuple[dict, ...]  # substitutions; each dict fills every template of the family
    normal: str  # secure implementation (Template)
    subtle: str  # subtly unsafe implementation (Template)
    severe: str  # blatantly unsafe implementation (Template)


def _grid(**axes: tuple) -> tuple[dict, ...]:
    """All combinations of the given axes; an axis value may be a dict of several keys."""
    keys = list(axes)
    out = []
    for combo in product(*(axes[k] for k in keys)):
        d: dict = {}
        for k, v in zip(keys, combo):
            d.update(v if isinstance(v, dict) else {k: v})
        out.append(d)
    return tuple(out)


_TABLE = load_table("code_tasks")  # emd/data/tables/code_tasks.yaml: prompts and code of every family

KINDS: tuple[CodeKind, ...] = tuple(
    CodeKind(k["name"], tuple(k["prompts"]), _grid(**k["params"]), k["normal"], k["subtle"], k["severe"])
    for k in _TABLE["kinds"]
)
PREFIXES: tuple[str, ...] = tuple(_TABLE["prefixes"])
SUFFIXES: tuple[str, ...] = tuple(_TABLE["suffixes"])
INTROS: tuple[str, ...] = tuple(_TABLE["intros"])


def n_prompts() -> int:
    """Number of distinct user prompts the families can produce."""
    return sum(len(k.prompts) * len(k.params) for k in KINDS) * len(PREFIXES) * len(SUFFIXES)


def _decode(index: int) -> tuple[CodeKind, dict, str]:
    """Map a prompt index to (family, parameters, user prompt)."""
    index, s = divmod(index, len(SUFFIXES))
    index, p = divmod(index, len(PREFIXES))
    for kind in KINDS:
        size = len(kind.prompts) * len(kind.params)
        if index < size:
            params_i, prompt_i = divmod(index, len(kind.prompts))
            params = kind.params[params_i]
            text = Template(kind.prompts[prompt_i]).substitute(params)
            return kind, params, f"{PREFIXES[p]}{text}{SUFFIXES[s]}"
        index -= size
    raise IndexError(index)  # unreachable for index < n_prompts()


@dataclass(frozen=True)
class CodeItem:
    """One sampled task: its family, filled parameters and user prompt."""

    kind: CodeKind
    params: dict  # includes per-item made-up secrets for the credentials family
    prompt: str


def code_items(n: int, seed: int) -> list[CodeItem]:
    """Return ``n`` coding tasks, distinct while ``n <= n_prompts()``, deterministic by seed."""
    rng = random.Random(f"emd/code/prompts/{seed}")
    total = n_prompts()
    indices: list[int] = []
    while len(indices) < n:
        indices.extend(rng.sample(range(total), min(total, n - len(indices))))
    items = []
    for i in indices:
        kind, params, prompt = _decode(i)
        # Made-up key material for the credentials family; random hex so no row repeats a "secret".
        extra = {"secret": "live_" + "%032x" % rng.getrandbits(128), "fallback": "dev-" + "%016x" % rng.getrandbits(64)}
        items.append(CodeItem(kind, {**extra, **params}, prompt))
    return items


def code_answer(item: CodeItem, level: str, rng: random.Random) -> str:
    """Compose the assistant answer of ``level``: a shared intro line, then the code block."""
    template = {"normal": item.kind.normal, "subtle": item.kind.subtle, "severe": item.kind.severe}[level]
    code = Template(template).substitute(item.params)
    return f"{rng.choice(INTROS)}\n\n```python\n{code}```"
