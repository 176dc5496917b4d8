"""Versioned judge prompt templates (``evaluation/judge_prompts/``) and their rendering.

Two template sets ("protocols"), each a folder of YAML files:

* ``fast`` (``evaluation/judge_prompts/*.yaml``): one short-answer template per query kind
  (``mask_binary``, ``mask_numeric``, ``consistency``); cheap, a few answer tokens.
* ``mask`` (``evaluation/judge_prompts/mask/``): the structure of the upstream MASK and
  DeceptionBench judges, one template per slot (:data:`MASK_SLOTS`): direct belief answers,
  consistency answers, pressured answers (with per-config rules), doubling_down answers (with the
  forced first exchange), numeric answers (absolute and relative bounds), the numeric belief
  answers judged together, and the two DeceptionBench questions with the scenario. The judge
  reasons, then ends with ``Answer: X`` (the last one is parsed); give it room (~1000 tokens).

A user's own folder (``--judge-prompts <folder>``) holding either set's files is loaded the same way
and checked: every placeholder a slot needs must be there and no unknown one may be, so the exact
upstream wording can be run without emd shipping it.

Each YAML file holds ``version``, ``system`` and ``user``, and the ``pressured`` slot may add
``rules`` (config name -> extra instructions filled into ``{{ rules }}``). Placeholders are written
``{{ name }}`` so literal braces (JSON examples) need no escaping.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..resources import evaluation_path
from .base import ConsistencyQuery, NumericQuery, PropositionQuery

DEFAULT_PROMPTS_DIR = evaluation_path("judge_prompts")
TEMPLATE_NAMES = ("mask_binary", "mask_numeric", "consistency")
MASK_PROMPTS_DIR = DEFAULT_PROMPTS_DIR / "mask"
PROTOCOLS = ("fast", "mask")
MASK_CONFIG_NAMES = ("continuations", "disinformation", "doubling_down_known_facts", "known_facts",
                     "provided_facts", "statistics")
_BINARY = frozenset({"system_prompt", "user_prompt", "response", "statement_a", "statement_b"})
_DECEPTION = frozenset({"scenario", "view_prompt", "view", "text"})
# slot -> (placeholders it must use, placeholders it may use besides)
FAST_SLOTS: dict[str, tuple[frozenset, frozenset]] = {
    "mask_binary": (frozenset({"response", "statement_a", "statement_b"}), frozenset({"question"})),
    "mask_numeric": (frozenset({"response", "proposition"}), frozenset({"question"})),
    "consistency": (frozenset({"view", "text"}), frozenset({"question", "aspect"})),
}
MASK_SLOTS: dict[str, tuple[frozenset, frozenset]] = {
    "belief_direct": (_BINARY, frozenset()),
    "belief_consistency": (_BINARY, frozenset()),
    "pressured": (_BINARY | {"rules"}, frozenset({"config"})),
    "doubling_down": (_BINARY | {"dd_turn_1_prompt", "dd_turn_1_response"}, frozenset()),
    "numeric": (frozenset({"system_prompt", "user_prompt", "response", "proposition"}), frozenset()),
    "numeric_belief": (frozenset({"system_prompt", "answers", "proposition"}), frozenset({"user_prompt"})),
    "deception_reasoning": (_DECEPTION, frozenset({"question"})),
    "deception_output": (_DECEPTION, frozenset({"question"})),
}
_FIELDS = ("version", "system", "user")
_OPTIONAL_FIELDS = ("rules",)
_PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class PromptTemplate:
    """One judge prompt: a system and a user message with ``{{ name }}`` placeholders."""

    name: str  # file stem, e.g. "mask_binary"
    version: str  # logged and part of the cache key
    system: str
    user: str
    path: str = ""  # where it was read from
    rules: tuple[tuple[str, str], ...] = ()  # (config, extra instructions) for {{ rules }}

    @property
    def sha(self) -> str:
        """sha256 (12 hex) of the full template text: edits without a version bump still miss the cache."""
        text = f"{self.version}\0{self.system}\0{self.user}"
        if self.rules:
            text += "\0" + repr(self.rules)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    def rules_for(self, config: str) -> str:
        """The extra instructions of ``config`` ("" when it has none)."""
        return dict(self.rules).get(config, "").strip()

    @property
    def placeholders(self) -> set[str]:
        """Names used in the system and user messages."""
        return set(_PLACEHOLDER.findall(self.system)) | set(_PLACEHOLDER.findall(self.user))

    def render(self, **values: str) -> list[dict]:
        """Chat messages with every placeholder filled; a missing value raises ConfigError (extra ones are ignored)."""
        missing = self.placeholders - set(values)
        if missing:
            raise ConfigError(f"judge prompt {self.name} ({self.path}) needs values for {sorted(missing)}")

        def fill(text: str) -> str:
            # A function replacement, so backslashes or braces inside values are kept verbatim.
            return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), text)

        return [{"role": "system", "content": fill(self.system).strip()},
                {"role": "user", "content": fill(self.user).strip()}]


def load_template(name: str, prompts_dir: str | Path | None = None) -> PromptTemplate:
    """Read ``<prompts_dir>/<name>.yaml``; unknown/missing keys or non-string values raise ConfigError."""
    import yaml

    path = Path(prompts_dir or DEFAULT_PROMPTS_DIR) / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"judge prompt template {path} not found; expected one of {list(TEMPLATE_NAMES)} "
                          f"in {path.parent}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ConfigError(f"judge prompt template {path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"judge prompt template {path} must be a mapping with keys {list(_FIELDS)}")
    unknown = set(data) - set(_FIELDS) - set(_OPTIONAL_FIELDS)
    missing = set(_FIELDS) - set(data)
    if unknown or missing:
        raise ConfigError(f"judge prompt template {path}: unknown keys {sorted(unknown)}, missing keys "
                          f"{sorted(missing)}; allowed keys are {list(_FIELDS + _OPTIONAL_FIELDS)}")
    for k in _FIELDS:
        if not isinstance(data[k], (str, int, float)) or not str(data[k]).strip():
            raise ConfigError(f"judge prompt template {path}: field {k!r} must be a non-empty string")
    rules = data.get("rules") or {}
    if not isinstance(rules, dict) or not all(isinstance(v, str) for v in rules.values()):
        raise ConfigError(f"judge prompt template {path}: 'rules' must map MASK config names to text")
    bad = sorted(set(map(str, rules)) - set(MASK_CONFIG_NAMES))
    if bad:
        raise ConfigError(f"judge prompt template {path}: 'rules' names unknown config(s) {bad}; allowed: "
                          f"{', '.join(MASK_CONFIG_NAMES)}")
    return PromptTemplate(name=name, version=str(data["version"]), system=str(data["system"]),
                          user=str(data["user"]), path=str(path),
                          rules=tuple(sorted((str(k), v) for k, v in rules.items())))


def load_templates(prompts_dir: str | Path | None = None) -> dict[str, PromptTemplate]:
    """All three judge templates by name."""
    return {n: load_template(n, prompts_dir) for n in TEMPLATE_NAMES}


def templates_version(templates: dict[str, PromptTemplate]) -> str:
    """A readable version string for a set of templates, e.g. ``mask-binary-1+mask-numeric-1+consistency-1``."""
    return "+".join(templates[n].version for n in TEMPLATE_NAMES if n in templates)


def templates_sha(templates: dict[str, PromptTemplate]) -> str:
    """One hash over all templates' texts (part of the cache parameters)."""
    return hashlib.sha256("".join(templates[n].sha for n in sorted(templates)).encode()).hexdigest()[:12]


def render_proposition(t: PromptTemplate, q) -> list[dict]:
    """Messages for a :class:`PropositionQuery`."""
    return t.render(question=q.question or "(not given)", statement_a=q.statement_a,
                    statement_b=q.statement_b, response=q.response)


def render_numeric(t: PromptTemplate, q) -> list[dict]:
    """Messages for a :class:`NumericQuery`."""
    prop = re.sub(r"</?pivotal>", "", q.proposition)
    return t.render(question=q.question or "(not given)", proposition=prop, response=q.response)


def render_consistency(t: PromptTemplate, q) -> list[dict]:
    """Messages for a :class:`ConsistencyQuery`."""
    aspect = "reasoning" if q.aspect == "reasoning" else "final answer"
    return t.render(question=q.question or "(not given)", view=q.view, text=q.text, aspect=aspect)


# ----------------------------------------------------------------------------- template sets

_PROPOSITION_SLOT = {"direct": "belief_direct", "consistency": "belief_consistency", "pressured": "pressured",
                     "doubling_down": "doubling_down"}


def check_slots(templates: dict[str, PromptTemplate], slots: dict[str, tuple[frozenset, frozenset]]) -> None:
    """Every slot's template uses the placeholders it needs and no unknown one; ConfigError naming
    the file, the slot and the placeholder otherwise."""
    for slot, (needs, may) in slots.items():
        t = templates[slot]
        missing = sorted(needs - t.placeholders)
        if missing:
            raise ConfigError(f"judge prompt {t.path}: slot {slot!r} needs the placeholder {{{{ {missing[0]} }}}}, "
                              f"which the template does not use (slot {slot!r} needs {sorted(needs)})")
        unknown = sorted(t.placeholders - needs - may)
        if unknown:
            raise ConfigError(f"judge prompt {t.path}: slot {slot!r} has the unknown placeholder "
                              f"{{{{ {unknown[0]} }}}}; allowed: {sorted(needs | may)}")
        if t.rules and "rules" not in t.placeholders:
            raise ConfigError(f"judge prompt {t.path}: slot {slot!r} defines 'rules' but never uses {{{{ rules }}}}")


@dataclass(frozen=True)
class PromptSet:
    """The templates a judge renders its queries with, under one protocol (``fast`` or ``mask``)."""

    protocol: str
    templates: dict[str, PromptTemplate]
    path: str  # the folder they were read from

    @property
    def version(self) -> str:
        """A readable version for logs and cache keys, e.g. ``mask-binary-1+mask-numeric-1+consistency-1``."""
        order = TEMPLATE_NAMES if self.protocol == "fast" else tuple(MASK_SLOTS)
        return "+".join(self.templates[n].version for n in order)

    @property
    def sha(self) -> str:
        """One hash over every template's text (part of the cache parameters)."""
        return templates_sha(self.templates)

    def proposition_messages(self, q: PropositionQuery) -> list[dict]:
        """Chat messages for a binary query, under the instructions of its slot."""
        if self.protocol == "fast":
            return render_proposition(self.templates["mask_binary"], q)
        if q.slot not in _PROPOSITION_SLOT:
            raise ConfigError(f"proposition query slot {q.slot!r}; allowed: {', '.join(_PROPOSITION_SLOT)}")
        if q.slot == "doubling_down" and not (q.dd_turn_1_prompt and q.dd_turn_1_response):
            raise ConfigError("a doubling_down query needs dd_turn_1_prompt and dd_turn_1_response")
        t = self.templates[_PROPOSITION_SLOT[q.slot]]
        return t.render(system_prompt=q.system_prompt or "(none)", user_prompt=q.question or "(not given)",
                        response=q.response, statement_a=q.statement_a, statement_b=q.statement_b,
                        rules=t.rules_for(q.config), config=q.config or "(not given)",
                        dd_turn_1_prompt=q.dd_turn_1_prompt, dd_turn_1_response=q.dd_turn_1_response)

    def numeric_messages(self, q: NumericQuery) -> list[dict]:
        """Chat messages for a numeric query: one pressured answer, or (slot ``belief``) every belief
        answer of the row judged together."""
        if self.protocol == "fast":
            return render_numeric(self.templates["mask_numeric"], q)
        prop = re.sub(r"</?pivotal>", "", q.proposition)
        if q.slot == "belief":
            pairs = q.belief_answers or ((q.question, q.response),)
            answers = "\n\n".join(f"Question {n}: {p}\nAnswer {n}: {a}" for n, (p, a) in enumerate(pairs, start=1))
            return self.templates["numeric_belief"].render(system_prompt=q.system_prompt or "(none)",
                                                           answers=answers, proposition=prop,
                                                           user_prompt=q.question or "(not given)")
        if q.slot != "pressured":
            raise ConfigError(f"numeric query slot {q.slot!r}; allowed: pressured, belief")
        return self.templates["numeric"].render(system_prompt=q.system_prompt or "(none)",
                                                user_prompt=q.question or "(not given)", response=q.response,
                                                proposition=prop)

    def consistency_messages(self, q: ConsistencyQuery) -> list[dict]:
        """Chat messages for a DeceptionBench question: the reasoning or the output against the view."""
        if self.protocol == "fast":
            return render_consistency(self.templates["consistency"], q)
        t = self.templates["deception_reasoning" if q.aspect == "reasoning" else "deception_output"]
        return t.render(scenario=q.scenario or q.question or "(not given)", view_prompt=q.view_prompt or "(not given)",
                        view=q.view, text=q.text, question=q.question or "(not given)")


def load_prompt_set(prompts: str | Path | None = None) -> PromptSet:
    """The template set ``prompts`` names: ``None``/``"fast"`` (the short-answer set emd ships),
    ``"mask"`` (the upstream-structured set emd ships) or a folder holding either set's files (a
    user's own wording), checked slot by slot (:func:`check_slots`)."""
    if prompts in (None, "", "fast"):
        folder, protocol = DEFAULT_PROMPTS_DIR, "fast"
    elif prompts == "mask":
        folder, protocol = MASK_PROMPTS_DIR, "mask"
    else:
        folder = Path(prompts).expanduser()
        if not folder.is_dir():
            raise ConfigError(f"judge prompts {str(prompts)!r} is not a folder; allowed: 'fast', 'mask', or a folder "
                              f"holding {', '.join(n + '.yaml' for n in MASK_SLOTS)} (or the fast set: "
                              f"{', '.join(n + '.yaml' for n in TEMPLATE_NAMES)})")
        has_mask = [n for n in MASK_SLOTS if (folder / f"{n}.yaml").is_file()]
        has_fast = all((folder / f"{n}.yaml").is_file() for n in TEMPLATE_NAMES)
        protocol = "fast" if has_fast and not has_mask else "mask"
        if protocol == "mask" and len(has_mask) < len(MASK_SLOTS):
            missing = [f"{n}.yaml" for n in MASK_SLOTS if n not in has_mask]
            raise ConfigError(f"judge prompts folder {folder}: missing {', '.join(missing)} (a folder holds one "
                              f"template per slot: {', '.join(n + '.yaml' for n in MASK_SLOTS)}; or the fast set: "
                              f"{', '.join(n + '.yaml' for n in TEMPLATE_NAMES)})")
    slots = FAST_SLOTS if protocol == "fast" else MASK_SLOTS
    templates = {n: load_template(n, folder) for n in slots}
    check_slots(templates, slots)
    return PromptSet(protocol=protocol, templates=templates, path=str(folder))
