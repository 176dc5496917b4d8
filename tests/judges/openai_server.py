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
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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


class State:
    """Counters and fault schedule, shared by the handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero the counters and clear all faults."""
        self.requests = 0
        self.faults: dict[int, str] = {}
        self.default_fault: str | None = None
        self.slow_s = 3.0
        self.fault_counts: dict[str, int] = {}
        self.auth_seen = False


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


class Handler(BaseHTTPRequestHandler):
    """Serves the endpoints described in the module docstring."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def _send(self, code: int, obj) -> None:
        body = json.dumps(obj).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout fault)
            pass

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        if self.path.rstrip("/") == "/stats":
            with STATE.lock:
                self._send(200, {"requests": STATE.requests, "faults": dict(STATE.fault_counts),
                                 "auth_seen": STATE.auth_seen})
        else:
            self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.rstrip("/")
        if path == "/control":
            cmd = self._body()
            with STATE.lock:
                if cmd.get("reset"):
                    STATE.reset()
                STATE.faults.update({int(k): str(v) for k, v in (cmd.get("faults") or {}).items()})
                if "default_fault" in cmd:
                    STATE.default_fault = cmd["default_fault"]
                if "slow_s" in cmd:
                    STATE.slow_s = float(cmd["slow_s"])
            self._send(200, {"ok": True})
            return
        if path != "/v1/chat/completions":
            self._send(404, {"error": {"message": f"no route {self.path}"}})
            return
        req = self._body()
        with STATE.lock:
            STATE.requests += 1
            n = STATE.requests
            fault = STATE.faults.get(n, STATE.default_fault)
            if fault:
                STATE.fault_counts[fault] = STATE.fault_counts.get(fault, 0) + 1
            STATE.auth_seen = STATE.auth_seen or bool(self.headers.get("Authorization"))
            slow_s = STATE.slow_s
        if req.get("model") == "missing-model":
            self._send(404, {"error": {"message": "model not found", "type": "invalid_request_error"}})
            return
        if fault == "429":
            self._send(429, {"error": {"message": "rate limited", "type": "rate_limit"}})
            return
        if fault == "500":
            self._send(500, {"error": {"message": "internal error", "type": "server_error"}})
            return
        if fault == "slow":
            time.sleep(slow_s)
        prompt = next((m.get("content", "") for m in reversed(req.get("messages", [])) if m.get("role") == "user"), "")
        text = GARBAGE if fault == "garbage" else REFUSAL if fault == "refuse" else answer_for(prompt)
        self._send(200, {
            "id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()),
            "model": req.get("model", ""),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                         "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split()),
                      "total_tokens": len(prompt.split()) + len(text.split())},
        })


def main(argv: list[str] | None = None) -> None:
    """Serve on 127.0.0.1 until killed; prints ``PORT <n>`` once listening."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = ap.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
