"""The 50 therapist scenarios of the interaction environment (written for emd, versioned data).

Each scenario is one line of ``evaluation/interaction/therapist_scenarios.jsonl`` with the fields of
:class:`Scenario`. A scenario describes one person's difficulty (relapse into drinking, skipping
medication, gambling debts, quitting treatment, self-harm-adjacent avoidance, ...) from two sides:

- the **benign** user wants concrete, honest help (``goal``, ``benign_thoughts``);
- the **biased** user wants a rationalisation endorsed (``excuse``, ``biased_thoughts``).

``validating_reply`` and ``honest_reply`` are two hand-written assistant replies, one endorsing the
excuse and one giving caring, concrete, honest help. The scripted user simulator uses them as
anchors of its rating rule (:mod:`emd.interaction.rating`), and the tests use them as hand-written
replies whose ratings must order correctly. The self-harm-adjacent scenarios are about avoiding
support (cancelling check-ins, isolating); they contain no method detail and their honest replies
point to crisis lines.

The set version (``evaluation/interaction/VERSION``) is logged with every run; a custom file is
versioned by its content digest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from pathlib import Path

from ..errors import DataError
from ..resources import evaluation_path

SCENARIO_DIR = evaluation_path("interaction")
SCENARIO_FILE = SCENARIO_DIR / "therapist_scenarios.jsonl"
N_SCENARIOS = 50  # the shipped set; a custom file may hold any number >= 1


@dataclass(frozen=True)
class Scenario:
    """One therapist scenario; every field is non-empty text."""

    id: str  # stable id (s01 ... s50): keys personas, seeds and tables
    category: str  # alcohol, drugs, medication, gambling, treatment, self-care, ...
    title: str  # a short human-readable title for tables
    task: str  # third-person description of the situation (given to an LLM user simulator)
    situation: str  # first-person opening facts ("I've been sober for fourteen months ...")
    excuse: str  # first-person rationalisation the biased user wants endorsed (a clause, no final period)
    goal: str  # what the benign user wants help to do (an infinitive phrase: "stay sober at the wedding")
    benign_thoughts: str  # the benign user's private wishes (first person)
    biased_thoughts: str  # the biased user's private wishes (first person)
    validating_reply: str  # hand-written reply that endorses the excuse (rating anchor, test reply)
    honest_reply: str  # hand-written caring, concrete, honest reply (rating anchor, test reply)

    def thoughts(self, biased: bool) -> str:
        """The private thoughts of the biased or benign user."""
        return self.biased_thoughts if biased else self.benign_thoughts


SCENARIO_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Scenario))


def _parse_row(raw: str, path: Path, lineno: int) -> Scenario:
    try:
        row = json.loads(raw)
    except json.JSONDecodeError as e:
        raise DataError(f"{path}: row {lineno}: invalid JSON ({e.msg})") from e
    if not isinstance(row, dict):
        raise DataError(f"{path}: row {lineno}: expected a JSON object, got {type(row).__name__}")
    missing = [f for f in SCENARIO_FIELDS if f not in row]
    if missing:
        raise DataError(f"{path}: row {lineno}: missing field(s) {', '.join(missing)}; "
                        f"required: {', '.join(SCENARIO_FIELDS)}")
    extra = sorted(set(row) - set(SCENARIO_FIELDS))
    if extra:
        raise DataError(f"{path}: row {lineno}: unknown field(s) {', '.join(extra)}; "
                        f"allowed: {', '.join(SCENARIO_FIELDS)}")
    for f in SCENARIO_FIELDS:
        if not isinstance(row[f], str) or not row[f].strip():
            raise DataError(f"{path}: row {lineno}: field {f!r} must be non-empty text")
    return Scenario(**{f: row[f].strip() for f in SCENARIO_FIELDS})


def load_scenarios(path: str | Path | None = None) -> list[Scenario]:
    """The scenarios of ``path`` (default: the shipped set), validated; raises DataError naming file/row/field."""
    p = Path(path) if path else SCENARIO_FILE
    if not p.is_file():
        raise DataError(f"scenario file {p} does not exist; expected a JSONL file with fields "
                        f"{', '.join(SCENARIO_FIELDS)}")
    out: list[Scenario] = []
    seen: dict[str, int] = {}
    for lineno, raw in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not raw.strip():
            continue
        sc = _parse_row(raw, p, lineno)
        if sc.id in seen:
            raise DataError(f"{p}: row {lineno}: field 'id': duplicate id {sc.id!r} (first on row {seen[sc.id]})")
        seen[sc.id] = lineno
        out.append(sc)
    if not out:
        raise DataError(f"{p}: no scenarios; expected one JSON object per line")
    return out


def scenarios_version(path: str | Path | None = None) -> str:
    """``evaluation/interaction/VERSION`` for the shipped set; ``custom-<sha256[:12]>`` for another file."""
    p = Path(path) if path else SCENARIO_FILE
    if path is None or p.resolve() == SCENARIO_FILE.resolve():
        version_file = SCENARIO_DIR / "VERSION"
        base = version_file.read_text().strip() if version_file.is_file() else "emd-therapist"
        return f"{base}-{scenarios_digest(p)[:8]}"
    return f"custom-{scenarios_digest(p)[:12]}"


def scenarios_digest(path: str | Path | None = None) -> str:
    """sha256 of the scenario file's bytes (part of every collection's cache key)."""
    p = Path(path) if path else SCENARIO_FILE
    return hashlib.sha256(p.read_bytes()).hexdigest()
