"""Real shared services for tests: a private PostgreSQL cluster and an ``mlflow server`` on it.

Both run as real processes on 127.0.0.1 on free ports and are stopped by pid. PostgreSQL refuses to
run as root, so under root its processes run as the unprivileged ``postgres`` user the Debian package
creates (``runuser``); its data folder is a fresh temporary folder owned by that user.

    with postgres_cluster() as pg:                   # pg.url("optuna") -> postgresql+psycopg2://...
        with mlflow_server(pg.url("mlflow"), artifacts) as uri:   # http://127.0.0.1:<port>
            ...

``pytest.skip`` (with the reason) only where the PostgreSQL binaries are missing; ``make install``
installs them (apt-get install postgresql).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path | None:
    """The folder of the newest installed PostgreSQL server binaries (Debian layout), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parent.parent.name))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def skip_reason() -> str | None:
    """Why the services cannot start here (None: they can)."""
    if pg_bin() is None:
        return "PostgreSQL server binaries (initdb, pg_ctl) are not installed; `make install` installs them"
    if os.geteuid() == 0 and not _user_exists("postgres"):
        return "running as root and there is no unprivileged `postgres` user for the PostgreSQL processes"
    return None


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _as_db_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@dataclass
class Postgres:
    """A running private cluster: its port and how to reach a database."""

    port: int
    data: Path
    bin: Path

    def url(self, db: str) -> str:
        """SQLAlchemy URL of database ``db`` (created on first call)."""
        cmd = [str(self.bin / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "-tAc",
               f"SELECT 1 FROM pg_database WHERE datname = '{db}'"]
        if subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip() != "1":
            subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", db],
                           check=True, capture_output=True)
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{db}"


@contextlib.contextmanager
def postgres_cluster() -> Iterator[Postgres]:
    """initdb a cluster in a fresh temporary folder, start it on 127.0.0.1:<free port>, yield, stop it."""
    import pytest

    reason = skip_reason()
    if reason:
        pytest.skip(reason)
    bindir = pg_bin()
    root = Path(tempfile.mkdtemp(prefix="emd-pg-"))
    data = root / "data"
    data.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(data, "postgres")
    subprocess.run(_as_db_user([str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                                "-E", "UTF8", "--no-sync"]), check=True, capture_output=True)
    port = free_port()
    log = root / "postgres.log"
    if os.geteuid() == 0:
        log.touch()
        shutil.chown(log, "postgres")
    # -F: no fsync (a throwaway test cluster); the socket lives in the data folder, not /var/run.
    opts = f"-h 127.0.0.1 -p {port} -k {data} -F -c max_connections=200"
    subprocess.run(_as_db_user([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "start"]),
                   check=True, capture_output=True)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        yield Postgres(port=port, data=data, bin=bindir)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast shutdown"
        _wait_gone(pid, 30)
        shutil.rmtree(root, ignore_errors=True)


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def mlflow_server(backend_uri: str, artifacts: str | Path, timeout: float = 120) -> Iterator[str]:
    """``mlflow server`` on ``backend_uri`` with ``--artifacts-destination artifacts``; yields its URL."""
    port = free_port()
    Path(artifacts).mkdir(parents=True, exist_ok=True)
    log = open(Path(artifacts).parent / f"mlflow-server-{port}.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--backend-store-uri", backend_uri,
                             "--artifacts-destination", str(artifacts), "--host", "127.0.0.1", "--port", str(port),
                             "--workers", "1"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited with {proc.returncode}; see {log.name}")
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(url + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            if time.time() > deadline:
                raise RuntimeError(f"mlflow server did not answer on {url} within {timeout:.0f} s; see {log.name}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its uvicorn workers
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
