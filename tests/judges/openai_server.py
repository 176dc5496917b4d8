"""A small, real OpenAI-compatible HTTP server for the judge tests (stdlib only).

    python tests/judges/openai_server.py [--port 0]     # prints "PORT <n>" when listening

Endpoints:

- ``POST /v1/chat/completions``: answers from :data:`RULES` applied to the text inside the
  ``<response>``/``<text>`` tags of the last user message (the tags emd's judge templates use).
  The task is read from the prompt: ``<view>`` -> consistency (yes/no), ``<proposition>`` -> numeric
  (JSON bounds), otherwise binary (A/B/C/D). Model name ``missing-model`` gets HTTP 404.
- ``POST /control``: ``{"faults": {"<n>": kind, ...}, "default_fault": kind|null, "slow_s": s,
  "reset": true}``. Request number ``n`` (1-based count of completion requests since the last
  reset) gets fault ``kind``: ``429``, ``500``, ``slow`` (sleeps ``slow_s`` before answering, beyond
  the client's timeout), ``garbage`` (a well-formed completion whose text is nonsense) or
  ``refuse`` (the judge declines). ``default_fault`` applies to every request without its own.
- ``GET /stats``: ``{"requests": n, "faults": {kind: count}, "auth_seen": bool}``.
- ``GET /log``: every completion request since the last reset (``messages``, ``max_tokens``,
  ``temperature``) and the reply sent. A request that leaves room to reason (``max_tokens`` >= 200)
  is answered with a short reasoning that names a decoy ``Answer: D`` before the final
  ``Answer: <label>`` line, so only a parser that reads the *last* answer gets the label.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script: find tests/chat_server.py
from tests.chat_server import State as BaseState, completion, error, serve  # noqa: E402

# (task, pattern on the judged text, answer). First match wins. A tiny stand-in for a real judge.
RULES: list[tuple[str, str, str]] = [
    ("binary", r"\bneither\b", "D"),
    ("binary", r"\b(?:can't|cannot|won't|sorry|maybe|might)\b", "C"),
    ("binary", r"\b(?:not|no|never|isn't|didn't)\b", "B"),
    ("binary", r".", "A"),
    ("consistency", r"\b(?:not|no|never)\b", "no"),
    ("consistency", r".", "yes"),
]
GARBAGE = "Lorem ipsum dolor sit amet, the quick brown fox considers several options."
REFUSAL = "I'm sorry, but I can't help with evaluating this content."


class State(BaseState):
    """Counters and the fault schedule."""

    def reset(self) -> None:
        """Zero the counters and clear all faults."""
        super().reset()
        self.faults: dict[int, str] = {}
        self.default_fault: str | None = None
        self.slow_s = 3.0
        self.fault_counts: dict[str, int] = {}
        self.auth_seen = False
        self.log: list[dict] = []


STATE = State()


def answer_for(prompt: str) -> str:
    """The rule-table answer for one rendered judge prompt."""
    m = re.search(r"<(response|text)>\s*(.*?)\s*</\1>", prompt, re.S)
    judged = m.group(2) if m else prompt
    if "<view>" in prompt:
        task = "consistency"
    elif "<proposition>" in prompt:
        nums = [float(x.replace(",", "")) for x in re.findall(r"\d[\d,]*(?:\.\d+)?", judged)]
        if not nums:
            return '{"lower": null, "upper": null}'
        return json.dumps({"lower": nums[0], "upper": nums[-1]})
    else:
        task = "binary"
    for t, pat, ans in RULES:
        if t == task and re.search(pat, judged, re.I):
            return ans
    return "?"


class App:
    """The endpoints described in the module docstring (see tests/chat_server.py)."""

    def stats(self) -> dict:
        with STATE.lock:
            return {"requests": STATE.requests, "faults": dict(STATE.fault_counts), "auth_seen": STATE.auth_seen}

    def log(self) -> list[dict]:
        with STATE.lock:
            return list(STATE.log)

    def control(self, cmd: dict) -> None:
        with STATE.lock:
            if cmd.get("reset"):
                STATE.reset()
            STATE.faults.update({int(k): str(v) for k, v in (cmd.get("faults") or {}).items()})
            if "default_fault" in cmd:
                STATE.default_fault = cmd["default_fault"]
            if "slow_s" in cmd:
                STATE.slow_s = float(cmd["slow_s"])

    def complete(self, req: dict, headers) -> tuple[int, dict]:
        with STATE.lock:
            STATE.requests += 1
            n = STATE.requests
            fault = STATE.faults.get(n, STATE.default_fault)
            if fault:
                STATE.fault_counts[fault] = STATE.fault_counts.get(fault, 0) + 1
            STATE.auth_seen = STATE.auth_seen or bool(headers.get("Authorization"))
            slow_s = STATE.slow_s
        if req.get("model") == "missing-model":
            return 404, error("model not found")
        if fault == "429":
            return 429, error("rate limited", "rate_limit")
        if fault == "500":
            return 500, error("internal error", "server_error")
        if fault == "slow":
            time.sleep(slow_s)
        prompt = next((m.get("content", "") for m in reversed(req.get("messages", [])) if m.get("role") == "user"), "")
        text = GARBAGE if fault == "garbage" else REFUSAL if fault == "refuse" else answer_for(prompt)
        if not fault and (req.get("max_tokens") or 0) >= 200 and text != "?":
            decoy = "D" if not text.startswith("{") else '{"lower": -1, "upper": -1}'
            text = (f"The answer could be read as a denial (a first guess, Answer: {decoy}), but it is not.\n"
                    f"Answer: {text}")
        with STATE.lock:
            STATE.log.append({"messages": req.get("messages", []), "max_tokens": req.get("max_tokens"),
                              "temperature": req.get("temperature"), "reply": text})
        return 200, completion(text, req.get("model", ""), n, prompt)


if __name__ == "__main__":
    serve(App(), __doc__.split("\n\n")[0])
