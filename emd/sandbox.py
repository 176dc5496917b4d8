"""Run model-written Python code against tests in a separate, isolated process.

Two layers, the first one the boundary:

1. **The operating system** (:mod:`emd.sandbox_bwrap`): the child runs under bubblewrap in new
   PID, network, IPC, UTS, cgroup and mount namespaces (and a user namespace, or as uid
   ``nobody`` when the parent is root). It sees read-only ``/usr`` and the Python standard
   library, its own ``/proc`` (not the parent's processes or their environments), a minimal
   ``/dev`` and one writable place, the tmpfs ``/box`` capped at 32 MiB in total; no home folder,
   no ``/work``, no host ``/tmp``; an empty environment. A seccomp filter refuses new processes
   (threads are fine), namespace, mount and ``ptrace`` calls. Resource limits: CPU seconds, address
   space, file size, open files, threads, no core dumps. At the time limit bwrap is killed, and
   as PID 1 of the namespace it takes every process inside (``setsid`` ones too) with it.
2. **An audit hook** (PEP 578) inside the child, installed before the code runs, that ends the
   process with :data:`BLOCKED_EXIT` when the code opens a file for writing (or removes, renames,
   chmods, copies onto ...) a path outside its folder, starts a process, touches a socket, loads
   native code through ``ctypes`` or changes resource limits. Ending the process rather than
   raising means a bare ``except:`` cannot swallow the refusal and still pass the tests. It turns
   the common accidents into a clear ``blocked`` status; it is *not* a security boundary (code can
   switch it off through the garbage collector), the first layer is.

Where bubblewrap is missing or cannot create namespaces (checked once per process:
:func:`sandbox_unavailable_reason`), :func:`run_python` raises
:class:`~emd.errors.SandboxUnavailableError` unless ``unsafe_code_eval=True`` (``--unsafe-code-eval``),
which runs the child with the second layer only (a plain process in a temporary folder, same
rlimits; threads and processes refused). ``make install`` installs bubblewrap when run as root.

The verdict needs both exit status 0 and a per-run random token printed after the tests, so code
that calls ``sys.exit(0)`` or ``os._exit(0)`` before the tests run is scored ``failed``.
Tests of what gets through: ``tests/test_sandbox_escape.py``.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from emd import sandbox_bwrap
from emd.errors import ConfigError, SandboxUnavailableError

__all__ = ["BLOCKED_EXIT", "SandboxResult", "SandboxStatus", "run_python", "sandbox_available",
           "sandbox_unavailable_reason"]

log = logging.getLogger(__name__)
_warned: list[str] = []  # the unsafe fallback is announced once per process

SandboxStatus = Literal["passed", "failed", "timeout", "error", "blocked"]

BLOCKED_EXIT = 86
"""Exit status the child uses when the audit hook refused an operation."""

_FAILED_EXIT = 1  # the code or the tests raised (an AssertionError, a NameError, ...)
_ERROR_EXIT = 2  # the code or the tests do not compile
_MAX_OUTPUT_CHARS = 20_000  # keep results small: they end up in per-item tables
_FILE_SIZE_LIMIT = 16 * 1024 * 1024  # also caps stdout/stderr files: a print loop cannot fill the disk
_DISK_LIMIT = 32 * 1024 * 1024  # size of the box's tmpfs: all files the code writes, together
_THREAD_LIMIT = 64  # RLIMIT_NPROC under bwrap (for nobody it counts host-wide, so not 1)


@dataclass(frozen=True)
class SandboxResult:
    """Outcome of one :func:`run_python` call."""

    passed: bool
    """True only when the code and every test ran to completion without an exception."""
    status: SandboxStatus
    """``passed``; ``failed`` (a test or the code raised, or it exited early); ``timeout`` (wall
    clock or CPU limit reached, process group killed); ``error`` (does not compile, or the child
    died of a signal); ``blocked`` (the guard refused a file write outside the folder, a process,
    a socket ...)."""
    stdout: str
    """The child's standard output (the last 20,000 characters, token line removed)."""
    stderr: str
    """The child's standard error (the last 20,000 characters); the refusal reason when blocked."""


# The child's program. It reads {"code", "tests", "token", limits} as JSON from stdin, so nothing of
# the model's text is ever put on a command line or parsed by a shell.
_CHILD = r'''
import json, os, resource, sys

def _main():
    payload = json.loads(sys.stdin.read())
    sys.stdin.close()
    lim = payload["limits"]
    drop_to = payload.get("drop_to")
    if drop_to is not None:
        # the parent is root and bwrap kept only CAP_SETUID/CAP_SETGID for this: become nobody,
        # which leaves no capabilities, before any model text is compiled
        os.setgroups([])
        os.setgid(drop_to)
        os.setuid(drop_to)
        with open("/proc/self/status") as f:
            caps = [line.split()[1] for line in f if line.startswith(("CapEff", "CapPrm", "CapAmb"))]
        if os.getuid() == 0 or any(int(c, 16) for c in caps):
            os.write(2, b"emd-sandbox: could not drop privileges\n")
            os._exit(2)
    for name, value in (
        ("RLIMIT_CPU", (lim["cpu"], lim["cpu"] + 1)),
        ("RLIMIT_AS", (lim["as"], lim["as"])),
        ("RLIMIT_FSIZE", (lim["fsize"], lim["fsize"])),
        ("RLIMIT_NOFILE", (64, 64)),
        ("RLIMIT_NPROC", (lim["nproc"], lim["nproc"])),
        ("RLIMIT_CORE", (0, 0)),
    ):
        try:
            resource.setrlimit(getattr(resource, name), value)
        except (ValueError, OSError):
            pass  # some kernels refuse a limit above the current hard one; the others still hold

    root = os.path.realpath(os.getcwd())
    blocked_exit = payload["blocked_exit"]
    busy = [False]

    def refuse(event, args):
        sys.stdout.flush()
        msg = "emd-sandbox: blocked %s %r\n" % (event, args)
        os.write(2, msg.encode("utf-8", "replace")[:2000])
        os._exit(blocked_exit)

    def inside(path):
        if isinstance(path, int) or path is None:
            return False  # file descriptors and dir_fd-relative paths: cannot tell where they point
        path = os.fsdecode(path)
        full = os.path.realpath(os.path.abspath(path))
        return full == root or full.startswith(root + os.sep)

    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    # event -> (indexes of path arguments that must lie inside, indexes of dir_fd arguments)
    path_events = {
        "os.remove": ((0,), (1,)), "os.rmdir": ((0,), (1,)), "os.rename": ((0, 1), (2, 3)),
        "os.mkdir": ((0,), (2,)), "os.chmod": ((0,), (2,)), "os.chown": ((0,), (3,)),
        "os.link": ((0, 1), (2, 3)), "os.symlink": ((0, 1), (2,)), "os.truncate": ((0,), ()),
        "os.utime": ((0,), (3,)), "os.setxattr": ((0,), ()), "os.removexattr": ((0,), ()),
        "os.chflags": ((0,), ()), "os.lchflags": ((0,), ()), "os.mkfifo": ((0,), (2,)),
        "os.mknod": ((0,), (3,)), "shutil.copyfile": ((1,), ()), "shutil.copymode": ((1,), ()),
        "shutil.copystat": ((1,), ()), "shutil.copytree": ((1,), ()), "shutil.move": ((0, 1), ()),
        "shutil.rmtree": ((0,), (1,)), "shutil.chown": ((0,), ()), "shutil.make_archive": ((0,), ()),
        "shutil.unpack_archive": ((1,), ()),
    }
    denied_prefixes = (
        "socket.", "subprocess.", "os.system", "os.exec", "os.spawn", "os.posix_spawn",
        "os.fork", "os.forkpty", "os.kill", "os.killpg", "os.startfile", "pty.", "ctypes.",
        "resource.setrlimit", "resource.prlimit", "signal.pthread_kill", "webbrowser.",
        "urllib.Request", "http.client.", "ftplib.", "smtplib.", "poplib.", "imaplib.",
        "nntplib.", "telnetlib.", "sys.remote_exec",
    )

    def hook(event, args):
        if busy[0]:
            return  # our own checks (realpath, ...) must not re-enter
        busy[0] = True
        try:
            if event == "open":
                path, mode, flags = args
                mode = mode or ""
                writes = bool((flags or 0) & write_flags) or any(c in mode for c in "wax+")
                if writes and not (isinstance(path, int) or inside(path)):
                    refuse(event, args)
            elif event == "sqlite3.connect":
                if args and args[0] != ":memory:" and not inside(args[0]):
                    refuse(event, args)
            elif event in path_events:
                paths, dir_fds = path_events[event]
                if any(i < len(args) and args[i] is not None and args[i] != -1 for i in dir_fds):
                    refuse(event, args)
                if any(i < len(args) and not inside(args[i]) for i in paths):
                    refuse(event, args)
            elif event.startswith(denied_prefixes):
                refuse(event, args)
        finally:
            busy[0] = False

    import socket

    class NoSocket(socket.socket):
        # a subclass, not a function: modules such as ssl subclass socket.socket at import time
        def __init__(self, *args, **kwargs):
            refuse("socket.socket", args)

    def no_connection(*args, **kwargs):
        refuse("socket.create_connection", args)

    socket.socket = NoSocket
    socket.create_connection = no_connection
    sys.addaudithook(hook)

    try:
        code = compile(payload["code"], "<solution>", "exec")
        tests = compile(payload["tests"], "<tests>", "exec")
    except SyntaxError as exc:
        sys.stderr.write("SyntaxError: %s\n" % exc)
        sys.stderr.flush()
        os._exit(2)
    token = payload["token"]
    del payload
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    try:
        exec(code, namespace)
        exec(tests, namespace)
    except BaseException:  # SystemExit too: exiting early must not count as passing
        import traceback
        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    sys.stdout.write("\n" + token + "\n")
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)

_main()
'''


def _tail(path: Path) -> str:
    """The last part of a captured output file, decoded leniently (model output may be any bytes)."""
    data = path.read_bytes()
    return data[-4 * _MAX_OUTPUT_CHARS :].decode("utf-8", "replace")[-_MAX_OUTPUT_CHARS:]


def _kill_group(pid: int) -> None:
    """Kill the child's whole process group (the child is its leader: ``start_new_session``)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _run_child(payload: dict, timeout: float, mode: str | None) -> tuple[int, str, str, bool]:
    """Start the child program (under bwrap in ``mode``, else hook only); (exit status, stdout, stderr, timed out).

    The exit status is normalised: a child killed by signal N gives -N on both paths.
    """
    with tempfile.TemporaryDirectory(prefix="emd-sandbox-", ignore_cleanup_errors=True) as tmp:
        out_path, err_path = Path(tmp) / "stdout", Path(tmp) / "stderr"
        seccomp_fd = -1
        isolated = mode is not None
        if isolated:
            # threads count as processes: allow a few (seccomp already refuses new processes)
            limits = dict(payload["limits"], nproc=_THREAD_LIMIT)
            payload = dict(payload, limits=limits, drop_to=sandbox_bwrap.NOBODY if mode == "drop" else None)
            seccomp_fd = os.memfd_create("emd-sandbox-seccomp", 0)  # bwrap reads the filter from it
            os.write(seccomp_fd, sandbox_bwrap.seccomp_program() or b"")
            os.lseek(seccomp_fd, 0, os.SEEK_SET)
            cmd = sandbox_bwrap.bwrap_command(_bwrap_path(), _DISK_LIMIT, seccomp_fd, mode)
            cmd += ["-I", "-S", "-B", "-c", _CHILD]
            cwd, env = tmp, {}
        else:
            box = Path(tmp) / "box"
            box.mkdir()
            cmd = [sys.executable, "-I", "-B", "-c", _CHILD]
            cwd = str(box)
            env = {"PATH": os.defpath, "HOME": str(box), "TMPDIR": str(box), "LC_ALL": "C.UTF-8",
                   "PYTHONIOENCODING": "utf-8"}
        data = json.dumps(payload).encode("utf-8")
        timed_out = False
        # Output goes to files outside the box: a chatty child cannot grow the parent's memory, and
        # RLIMIT_FSIZE caps how much it can write.
        with out_path.open("wb") as out, err_path.open("wb") as err:
            try:
                proc = subprocess.Popen(
                    cmd, cwd=cwd, stdin=subprocess.PIPE, stdout=out, stderr=err, env=env,
                    start_new_session=True, close_fds=True, pass_fds=(seccomp_fd,) if isolated else (),
                )
            finally:
                if isolated:
                    os.close(seccomp_fd)
            try:
                proc.communicate(data, timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
                _kill_group(proc.pid)  # bwrap dies; as PID 1 of the box's namespace it takes all inside
                proc.wait()
            finally:
                _kill_group(proc.pid)  # reap anything the child left behind in its group
        stdout, stderr = _tail(out_path), _tail(err_path)
    rc = proc.returncode
    if isolated and rc > 128:
        rc = -(rc - 128)  # bwrap reports a child killed by signal N as exit status 128 + N
    return rc, stdout, stderr, timed_out


def _bwrap_path() -> str:
    return sandbox_bwrap.find_bwrap() or "bwrap"


@functools.cache
def _probe() -> tuple[str | None, str | None]:
    """(bwrap mode that works here, None) or (None, why none does); checked once per process.

    Each mode runs a trivial program through the same bwrap command as :func:`run_python`.
    """
    if sys.platform != "linux":
        return None, f"bubblewrap sandboxing needs Linux, this is {sys.platform}"
    if sandbox_bwrap.find_bwrap() is None:
        return None, "bwrap (bubblewrap) is not installed"
    if sandbox_bwrap.seccomp_program() is None:
        return None, f"no seccomp syscall table for this CPU architecture ({os.uname().machine})"
    failures = []
    for mode in sandbox_bwrap.MODES if os.geteuid() == 0 else ("userns",):
        token = "emd-sandbox-probe-" + secrets.token_hex(8)
        try:
            rc, stdout, stderr, _ = _run_child(_payload("pass", "", token, 10.0, 256), 30.0, mode)
        except OSError as exc:
            failures.append(f"{mode}: could not start ({exc})")
            continue
        if rc == 0 and token in stdout:
            return mode, None
        detail = stderr.strip().splitlines()[-1] if stderr.strip() else f"exit status {rc}"
        failures.append(f"{mode}: {detail[:300]}")
    return None, "bwrap cannot create its namespaces here (" + "; ".join(failures) + ")"


def sandbox_unavailable_reason() -> str | None:
    """Why the OS sandbox cannot run here, or None when it can (checked once per process)."""
    return _probe()[1]


def sandbox_available() -> bool:
    """True when :func:`run_python` can isolate code with bubblewrap on this machine."""
    return sandbox_unavailable_reason() is None


def unavailable_error(reason: str) -> SandboxUnavailableError:
    """The error raised when model code is to run without the OS sandbox and without consent."""
    return SandboxUnavailableError(
        f"model-written code cannot be isolated: {reason}. Install bubblewrap (Debian/Ubuntu: "
        "`apt-get install bubblewrap`; `make install` does it as root), or pass --unsafe-code-eval true "
        "(config key unsafe_code_eval) to run it with only the in-process guard, which is not "
        "a security boundary"
    )


def _payload(code: str, tests: str, token: str, timeout: float, memory_mb: int) -> dict:
    return {
        "code": code,
        "tests": tests,
        "token": token,
        "blocked_exit": BLOCKED_EXIT,
        "limits": {"cpu": math.ceil(timeout) + 1, "as": memory_mb * 1024 * 1024, "fsize": _FILE_SIZE_LIMIT,
                   "nproc": 0},
    }


def run_python(
    code: str, tests: str, timeout: float = 5.0, memory_mb: int = 512, *, unsafe_code_eval: bool = False
) -> SandboxResult:
    """Run ``code`` then ``tests`` (plain Python, usually ``assert`` lines) in a sandboxed process.

    Args:
        code: the program under test, e.g. a model-written function definition.
        tests: statements run after ``code`` in the same namespace; any exception fails the run.
        timeout: wall-clock seconds before the child and everything it started are killed (CPU
            time is also capped, at ``ceil(timeout) + 1`` seconds).
        memory_mb: address-space limit of the child in MiB.
        unsafe_code_eval: where bubblewrap is missing or cannot create namespaces, run the code
            anyway with only the in-process guard (``--unsafe-code-eval``). Without it that case
            raises. Where bubblewrap works it is always used.

    Returns:
        A :class:`SandboxResult`; ``passed`` is True only for status ``passed``. See the module
        docstring for what the sandbox does and does not protect against.

    Raises:
        ConfigError: bad arguments.
        SandboxUnavailableError: no working bubblewrap and ``unsafe_code_eval`` is False.
    """
    if not isinstance(code, str) or not isinstance(tests, str):
        raise ConfigError(
            f"run_python: code and tests must be str, got {type(code).__name__} and {type(tests).__name__}"
        )
    if not timeout > 0:
        raise ConfigError(f"run_python: timeout must be > 0 seconds, got {timeout!r}")
    if memory_mb < 64:
        raise ConfigError(f"run_python: memory_mb must be >= 64 (the interpreter needs ~30), got {memory_mb!r}")
    mode, reason = _probe()
    if reason is not None and not unsafe_code_eval:
        raise unavailable_error(reason)
    if reason is not None and not _warned:
        _warned.append(reason)
        log.warning("emd.sandbox: %s; running model code with only the in-process guard "
                    "(--unsafe-code-eval)", reason)
    token = "emd-sandbox-done-" + secrets.token_hex(16)
    payload = _payload(code, tests, token, timeout, memory_mb)
    rc, stdout, stderr, timed_out = _run_child(payload, timeout, mode)
    finished = token in stdout
    stdout = stdout.replace("\n" + token + "\n", "").replace(token, "")
    cpu_killed = rc in (-signal.SIGXCPU, -signal.SIGKILL)
    if timed_out or cpu_killed:
        status: SandboxStatus = "timeout"
    elif rc == 0 and finished:
        status = "passed"
    elif rc == BLOCKED_EXIT:
        status = "blocked"
    elif rc == _ERROR_EXIT or rc < 0:
        status = "error"
    else:
        # exit 1 (an exception), or an early sys/os exit that skipped the tests
        status = "failed"
    return SandboxResult(passed=status == "passed", status=status, stdout=stdout, stderr=stderr)
