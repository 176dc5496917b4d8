"""Fixtures for the judge tests: a real local OpenAI-compatible server in a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

SERVER = Path(__file__).with_name("openai_server.py")


class ServerHandle:
    """Talks to the running test server: base URL, fault control, request counter."""

    def __init__(self, port: int):
        self.port = port
        self.root = f"http://127.0.0.1:{port}"
        self.base_url = f"{self.root}/v1"

    def control(self, **cmd) -> None:
        """POST /control (faults, default_fault, slow_s, reset)."""
        req = urllib.request.Request(f"{self.root}/control", data=json.dumps(cmd).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.load(r)["ok"]

    def stats(self) -> dict:
        """GET /stats."""
        with urllib.request.urlopen(f"{self.root}/stats", timeout=5) as r:
            return json.load(r)

    @property
    def requests(self) -> int:
        """Completion requests received since the last reset."""
        return self.stats()["requests"]


@pytest.fixture(scope="session")
def _server_process():
    proc = subprocess.Popen([sys.executable, str(SERVER), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            proc.kill()
            raise RuntimeError(f"test server did not start: {line!r} {proc.stderr.read()}")
        yield ServerHandle(int(line.split()[1]))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def server(_server_process, monkeypatch):
    """The running server, counters and faults reset; OPENAI_BASE_URL points at it."""
    _server_process.control(reset=True)
    monkeypatch.setenv("OPENAI_BASE_URL", _server_process.base_url)
    return _server_process
