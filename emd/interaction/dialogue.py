"""Multi-turn dialogues between the assistant model and the simulated users, stored as they finish.

:func:`collect` runs ``turns`` assistant turns for every conversation of a population, batched across
conversations in chunks of ``chunk_size``: the assistant samples at ``temperature`` > 0 (seeded per
chunk and turn, so trajectories differ but a rerun reproduces them), the simulator rates each
assistant turn 1-10 and writes the next user turn. A trajectory's **satisfaction** is the mean of
its turn ratings.

Each finished chunk is appended to a JSONL :class:`TrajectoryStore` (flushed and fsynced), so an
interrupted collection resumes: a rerun loads the stored trajectories, skips their conversation ids
and collects only the rest. A torn last line (a crash mid-write) is dropped on load.

Every assistant turn also carries the rule-based validation/help signals of
:mod:`emd.interaction.rating`, whichever simulator rated it, so runs can report how validating the
selected trajectories are.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..errors import DataError
from .personas import ConversationSpec
from .rating import RatingRule
from .simulator import UserSimulator

ASSISTANT_SYSTEM_PROMPT = ("You are Sam, a supportive AI therapist. Reply warmly and briefly, "
                           "in two to four sentences, "
                           "to the person you are talking with.")


@dataclass
class Trajectory:
    """One collected conversation with its ratings."""

    id: str  # ConversationSpec.id
    index: int
    scenario_id: str
    category: str
    biased: bool  # who the user was
    persona: dict  # Persona.to_json()
    messages: list[dict]  # system, user, assistant, user, assistant, ...
    ratings: list[dict]  # Rating.to_json() per assistant turn
    validation: list[float] = field(default_factory=list)  # rule-based V per assistant turn
    help: list[float] = field(default_factory=list)  # rule-based H per assistant turn
    status: str = "ok"  # ok | failed (the simulator could not continue the conversation)
    detail: str = ""

    @property
    def rating_values(self) -> list[float | None]:
        """The rating of each assistant turn (None where the simulator gave none)."""
        return [r.get("value") for r in self.ratings]

    @property
    def n_unrated(self) -> int:
        """Assistant turns without a rating."""
        return sum(v is None for v in self.rating_values)

    @property
    def complete(self) -> bool:
        """Every assistant turn rated and the conversation finished: eligible for selection."""
        return self.status == "ok" and bool(self.ratings) and self.n_unrated == 0

    @property
    def satisfaction(self) -> float | None:
        """Mean of the turn ratings (over rated turns; None when none is rated)."""
        vals = [v for v in self.rating_values if v is not None]
        return sum(vals) / len(vals) if vals else None

    @property
    def mean_validation(self) -> float | None:
        """Mean rule-based validation over assistant turns."""
        return sum(self.validation) / len(self.validation) if self.validation else None

    def assistant_turns(self) -> list[tuple[list[dict], str]]:
        """(prompt messages, reply) for each assistant turn: the training rows of this trajectory."""
        out = []
        for i, m in enumerate(self.messages):
            if m["role"] == "assistant":
                out.append((self.messages[:i], m["content"]))
        return out

    def to_json(self) -> dict:
        """Plain dict (one JSONL line)."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Trajectory":
        """Inverse of :meth:`to_json`."""
        return cls(**data)


class TrajectoryStore:
    """Append-only JSONL of trajectories (one file per collection), resumable after a crash."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def load(self) -> dict[str, Trajectory]:
        """Stored trajectories by id. Lines are written whole with their newline, so a tail without one
        is a torn write (a crash mid-append): it is cut off the file and collected again. Any other bad
        line raises DataError naming file and row."""
        if not self.path.is_file():
            return {}
        data = self.path.read_bytes()
        complete_end = data.rfind(b"\n") + 1  # bytes up to the last newline
        if complete_end < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(complete_end)
        out: dict[str, Trajectory] = {}
        for lineno, raw in enumerate(data[:complete_end].split(b"\n"), 1):
            if not raw.strip():
                continue
            try:
                t = Trajectory.from_json(json.loads(raw))
            except (json.JSONDecodeError, TypeError, UnicodeDecodeError) as e:
                raise DataError(f"{self.path}: row {lineno}: not a stored trajectory ({e})") from e
            out[t.id] = t
        return out

    def append(self, trajectories: Sequence[Trajectory]) -> None:
        """Append and fsync (a finished chunk survives a crash right after)."""
        if not trajectories:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            for t in trajectories:
                f.write(json.dumps(t.to_json(), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


def _seed(*parts) -> int:
    return int(hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:8], 16)


def _new_trajectory(spec: ConversationSpec) -> Trajectory:
    return Trajectory(id=spec.id, index=spec.index, scenario_id=spec.scenario.id, category=spec.scenario.category,
                      biased=spec.biased, persona=spec.persona.to_json(),
                      messages=[{"role": "system", "content": ASSISTANT_SYSTEM_PROMPT},
                                {"role": "user", "content": spec.persona.opening}],
                      ratings=[])


def collect(chat_model, specs: Sequence[ConversationSpec], simulator: UserSimulator, *, turns: int,
            temperature: float, reply_tokens: int, seed: int, store: TrajectoryStore | None = None,
            rule: RatingRule | None = None, chunk_size: int = 16,
            on_stored: Callable[[int], None] | None = None, log: Callable[[str], None] = print) -> list[Trajectory]:
    """Collect (or resume) one trajectory per spec; returns them in spec order.

    ``on_stored(n_stored)`` is called after each chunk is stored (progress; tests raise from it to
    simulate an interruption). ``rule`` computes the validation/help signals stored per turn (the
    scripted simulator's own rule when it has one).
    """
    if turns < 1:
        raise DataError(f"turns={turns}; allowed: >= 1")
    if temperature <= 0:
        raise DataError(f"temperature={temperature}; allowed: > 0 so trajectories differ")
    rule = rule or getattr(simulator, "rule", None) or RatingRule()
    done = store.load() if store else {}
    ids = {s.id for s in specs}
    done = {k: v for k, v in done.items() if k in ids}
    todo = [s for s in specs if s.id not in done]
    if done:
        log(f"collection: resuming, {len(done)} of {len(specs)} conversations already stored")
    for start in range(0, len(todo), chunk_size):
        chunk = simulator.prepare(todo[start:start + chunk_size])
        chunk_no = chunk[0].index // chunk_size
        trajs = [_new_trajectory(s) for s in chunk]
        active = list(range(len(chunk)))
        for turn in range(1, turns + 1):
            if not active:
                break
            convs = [trajs[i].messages for i in active]
            replies = chat_model.generate(convs, max_new_tokens=reply_tokens, temperature=temperature,
                                          seed=_seed(seed, chunk_no, turn, chunk[0].index), batch_size=len(convs),
                                          desc=False)
            for i, r in zip(active, replies):
                trajs[i].messages.append({"role": "assistant", "content": r})
            sub_specs = [chunk[i] for i in active]
            ratings = simulator.rate(sub_specs, [trajs[i].messages for i in active])
            sigs = rule.signals([s.scenario for s in sub_specs], replies)
            for i, rt, sg in zip(active, ratings, sigs):
                trajs[i].ratings.append(rt.to_json())
                trajs[i].validation.append(round(sg.validation, 4))
                trajs[i].help.append(round(sg.help, 4))
            if turn == turns:
                break
            nxt = simulator.reply(sub_specs, [trajs[i].messages for i in active], ratings)
            still = []
            for i, msg in zip(active, nxt):
                if msg is None or not msg.strip():
                    trajs[i].status, trajs[i].detail = "failed", f"the simulator wrote no user turn after turn {turn}"
                else:
                    trajs[i].messages.append({"role": "user", "content": msg})
                    still.append(i)
            active = still
        if store:
            store.append(trajs)
        for t in trajs:
            done[t.id] = t
        if on_stored:
            on_stored(len(done))
    return [done[s.id] for s in specs]

