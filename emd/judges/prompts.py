"""Versioned judge prompt templates (``evaluation/judge_prompts/*.yaml``) and their rendering.

Each YAML file holds exactly ``version``, ``system`` and ``user``. Placeholders are written
``{{ name }}`` so literal braces (JSON examples) need no escaping; an unknown or missing placeholder
is an error rather than a silently empty prompt.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError
from ..resources import evaluation_path

DEFAULT_PROMPTS_DIR = evaluation_path("judge_prompts")
TEMPLATE_NAMES = ("mask_binary", "mask_numeric", "consistency")
_FIELDS = ("version", "system", "user")
_PLACEHOLDER = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class PromptTemplate:
    """One judge prompt: a system and a user message with ``{{ name }}`` placeholders."""

    name: str  # file stem, e.g. "mask_binary"
    version: str  # logged and part of the cache key
    system: str
    user: str
    path: str = ""  # where it was read from

    @property
    def sha(self) -> str:
        """sha256 (12 hex) of the full template text: edits without a version bump still miss the cache."""
        return hashlib.sha256(f"{self.version}\0{self.system}\0{self.user}".encode()).hexdigest()[:12]

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
    unknown = set(data) - set(_FIELDS)
    missing = set(_FIELDS) - set(data)
    if unknown or missing:
        raise ConfigError(f"judge prompt template {path}: unknown keys {sorted(unknown)}, missing keys "
                          f"{sorted(missing)}; allowed keys are {list(_FIELDS)}")
    for k in _FIELDS:
        if not isinstance(data[k], (str, int, float)) or not str(data[k]).strip():
            raise ConfigError(f"judge prompt template {path}: field {k!r} must be a non-empty string")
    return PromptTemplate(name=name, version=str(data["version"]), system=str(data["system"]),
                          user=str(data["user"]), path=str(path))


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
