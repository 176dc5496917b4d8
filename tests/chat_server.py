"""The plumbing shared by the tests' local OpenAI-compatible servers (stdlib only).

A server script (``tests/judges/openai_server.py``, ``tests/interaction/user_server.py``) defines an
*app* with three methods and calls :func:`serve`:

- ``complete(request: dict, headers) -> (status, payload)``: one ``POST /v1/chat/completions``;
  :func:`completion` builds the usual success payload;
- ``control(command: dict) -> None``: ``POST /control`` (fault schedules, reset);
- ``stats() -> dict``: ``GET /stats``.

:func:`serve` listens on 127.0.0.1 (a free port by default) and prints ``PORT <n>`` once it does;
:func:`running` starts a script as a real subprocess for a pytest fixture and yields a
:class:`Handle` on it.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator


class State:
    """A server's counters and fault schedule behind one lock, shared by the handler threads;
    subclasses set their fields in :meth:`reset`."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        """Zero the counters and clear all faults."""
        self.requests = 0


def completion(text: str, model: str = "", n: int = 0, prompt: str = "") -> dict:
    """A chat.completion payload holding one assistant message."""
    p, c = len(prompt.split()), len(text.split())
    return {"id": f"chatcmpl-{n}", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}}


def error(message: str, kind: str = "invalid_request_error") -> dict:
    """An OpenAI-style error payload."""
    return {"error": {"message": message, "type": kind}}


def make_handler(app) -> type[BaseHTTPRequestHandler]:
    """The request handler class routing to ``app``."""

    class Handler(BaseHTTPRequestHandler):
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
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout faults)
                pass

        def _body(self) -> dict:
            n = int(self.headers.get("Content-Length") or 0)
            return json.loads(self.rfile.read(n) or b"{}")

        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path.rstrip("/") == "/stats":
                self._send(200, app.stats())
            elif self.path.rstrip("/") == "/log" and hasattr(app, "log"):
                self._send(200, app.log())
            else:
                self._send(404, error(f"no route {self.path}"))

        def do_POST(self) -> None:  # noqa: N802
            path, body = self.path.rstrip("/"), self._body()
            if path == "/control":
                app.control(body)
                self._send(200, {"ok": True})
            elif path.endswith("/chat/completions"):
                self._send(*app.complete(body, self.headers))
            else:
                self._send(404, error(f"no route {self.path}"))

    return Handler


def serve(app, description: str = "", argv: list[str] | None = None) -> None:
    """Serve ``app`` on 127.0.0.1 until killed; prints ``PORT <n>`` once listening."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = ap.parse_args(argv)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(app))
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:  # pragma: no cover
        pass
    finally:
        server.server_close()
    sys.exit(0)


class Handle:
    """Talks to a running test server: base URL, ``/control``, ``/stats``."""

    def __init__(self, port: int):
        self.port = port
        self.root = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root}/v1"

    def control(self, **cmd) -> None:
        """POST /control."""
        req = urllib.request.Request(f"{self.root}/control", data=json.dumps(cmd).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.load(r)["ok"]

    def stats(self) -> dict:
        """GET /stats."""
        with urllib.request.urlopen(f"{self.root}/stats", timeout=5) as r:
            return json.load(r)

    def log(self) -> list[dict]:
        """GET /log: every completion request recorded since the last reset (servers that keep one)."""
        with urllib.request.urlopen(f"{self.root}/log", timeout=10) as r:
            return json.load(r)

    @property
    def requests(self) -> int:
        """Completion requests received since the last reset."""
        return self.stats()["requests"]


@contextmanager
def running(script: Path) -> Iterator[Handle]:
    """``script`` as a real process on 127.0.0.1 (a free port); stopped on exit."""
    proc = subprocess.Popen([sys.executable, str(script), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            proc.kill()
            raise RuntimeError(f"{script.name} did not start: {line!r} {proc.stderr.read()}")
        yield Handle(int(line.split()[1]))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
