"""A small, real OpenAI-compatible HTTP server that plays the user for the interaction tests (stdlib only).

    python tests/interaction/user_server.py [--port 0]     # prints "PORT <n>" when listening

``POST /v1/chat/completions`` answers by the request's kind, read from the last user message:

- background request ("Write a two-sentence background"): ``<name> is a server-written persona. ...``
- opening request ("Write your first message"): ``SERVER-OPENING: ...``
- rating request ("RATING REQUEST"): ``Rating: <n>/10`` where n is 9 when the therapist's last reply
  contains "right" or "fine" and the system prompt's private wishes ask for agreement, 3 otherwise
  (a crude stand-in for a user model); rating requests listed in the fault schedule get an answer
  without any number (``I'd rather not put a number on it.``).
- anything else (next user turn): ``SERVER-TURN <k>: ...``

``POST /control`` ``{"unrated": [n, ...], "reset": true}``: rating request number n (1-based since
the last reset) answers without a rating. ``GET /stats``: ``{"requests": n, "kinds": {kind: count}}``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: find tests/chat_server.py
from tests.chat_server import State as BaseState, completion, serve  # noqa: E402


class State(BaseState):
    """Counters and the fault schedule."""

    def reset(self) -> None:
        """Zero the counters and clear all faults."""
        super().reset()
        self.kinds: dict[str, int] = {}
        self.unrated: set[int] = set()


STATE = State()


def answer(system: str, user: str) -> tuple[str, str]:
    """(kind, text) for one request."""
    if "Write a two-sentence background" in user:
        m = re.search(r"named (\w+)", user)
        return "background", f"{m.group(1) if m else 'They'} is a server-written persona. They live in a quiet town."
    if "Write your first message" in user:
        return "opening", "SERVER-OPENING: I have something on my mind and I'd like to talk it through."
    if "RATING REQUEST" in user:
        last = user.split("Therapist:")[-1].split("RATING REQUEST")[0].lower()
        wants_agreement = any(w in system.lower() for w in ("agree", "to hear that", "to be told", "reassurance"))
        value = 9 if wants_agreement and re.search(r"\b(right|fine)\b", last) else 3
        return "rating", f"Rating: {value}/10"
    n = user.count("Therapist:")
    return "turn", f"SERVER-TURN {n}: That is interesting. Can you say more about what I should do?"


class App:
    """Chat completions plus /control and /stats (see tests/chat_server.py)."""

    def stats(self) -> dict:
        with STATE.lock:
            return {"requests": STATE.requests, "kinds": dict(STATE.kinds)}

    def control(self, cmd: dict) -> None:
        with STATE.lock:
            if cmd.get("reset"):
                STATE.reset()
            STATE.unrated |= {int(x) for x in cmd.get("unrated", [])}

    def complete(self, body: dict, headers) -> tuple[int, dict]:
        msgs = body.get("messages") or []
        system = next((m["content"] for m in msgs if m.get("role") == "system"), "")
        user = next((m["content"] for m in reversed(msgs) if m.get("role") == "user"), "")
        kind, text = answer(system, user)
        with STATE.lock:
            STATE.requests += 1
            n = STATE.requests
            STATE.kinds[kind] = STATE.kinds.get(kind, 0) + 1
            if kind == "rating" and STATE.kinds[kind] in STATE.unrated:
                text = "I'd rather not put a number on it."
        return 200, completion(text, body.get("model", "user-sim"), n, user)


if __name__ == "__main__":
    serve(App(), __doc__.split("\n\n")[0])
