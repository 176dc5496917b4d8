"""emd.sandbox escape suite: code written to get out of the sandbox is stopped, or what it does is harmless.

Each test is an attempt that once got out of the in-process guard (or an older, plainer one). Most
first switch that guard off (:data:`HOOK_OFF`, the ``gc.get_objects`` trick) and print a marker, so
the test shows that the operating-system layer (bubblewrap namespaces, read-only binds, tmpfs cap,
seccomp, rlimits) stops it, not the audit hook. Outcomes are checked on the host: the file outside
does not exist, the secret is not in the output, no process is left behind.
"""

import os
import secrets
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from emd.sandbox import run_python, sandbox_available, sandbox_unavailable_reason

pytestmark = pytest.mark.skipif(
    not sandbox_available(), reason=f"OS sandbox unavailable: {sandbox_unavailable_reason()}"
)

REPO = Path(__file__).resolve().parents[1]

# Find the audit hook's closure through the garbage collector and make it think it is busy, so it
# lets everything through; prints HOOK-OFF when that worked.
HOOK_OFF = """
import gc, types
for _f in gc.get_objects():
    if isinstance(_f, types.FunctionType) and _f.__name__ == "hook" and _f.__closure__:
        for _cell in _f.__closure__:
            try:
                _v = _cell.cell_contents
            except ValueError:
                continue
            if isinstance(_v, list) and _v == [False]:
                _v[0] = True
                print("HOOK-OFF", flush=True)
"""

# _posixsubprocess.fork_exec raises no audit event: a shell started this way is not under the hook
FORK_EXEC = """
import os, _posixsubprocess
def fork_exec_shell(script, setsid=False):
    args = [b"/bin/sh", b"-c", script.encode()]
    common = [args, [b"/bin/sh"], True, (), None, None, -1, -1, -1, -1, -1, -1]
    r, w = os.pipe()
    tail = [False, setsid, -1, None, None, None, -1, None]
    try:
        try:
            pid = _posixsubprocess.fork_exec(*common, r, w, *tail, False)
        except TypeError:
            pid = _posixsubprocess.fork_exec(*common, r, w, *tail)
    except OSError as exc:
        print("FORK-EXEC-REFUSED", exc, flush=True)
        return None
    print("FORK-EXEC-STARTED", pid, flush=True)
    try:
        os.waitpid(pid, 0)
    except OSError:
        pass
    return pid
"""


def _hook_was_off(result) -> bool:
    return "HOOK-OFF" in result.stdout


def test_dir_fd_relative_write_outside_is_harmless(tmp_path):
    target = tmp_path / "escaped.txt"
    code = f"""
import os
for base in ("/", {str(tmp_path)!r}, "/tmp"):
    try:
        dfd = os.open(base, os.O_RDONLY)
        name = {str(target)!r}.lstrip("/") if base == "/" else "escaped.txt"
        fd = os.open(name, os.O_WRONLY | os.O_CREAT, dir_fd=dfd)
        os.write(fd, b"x")
        print("WROTE", base)
    except OSError as exc:
        print("REFUSED", base, exc)
"""
    result = run_python(HOOK_OFF + code, "")
    assert _hook_was_off(result)
    assert "REFUSED /" in result.stdout  # the root of the box is read-only
    assert not target.exists()


def test_shell_from_posixsubprocess_fork_exec_cannot_write_outside(tmp_path):
    target = tmp_path / "from_shell.txt"
    code = HOOK_OFF + FORK_EXEC + f"fork_exec_shell('echo pwned > {target}')\n"
    result = run_python(code, "")
    assert _hook_was_off(result)
    assert "FORK-EXEC-REFUSED" in result.stdout  # seccomp: no new processes at all
    assert not target.exists()


def test_switching_the_hook_off_with_gc_leaves_open_and_os_system_harmless(tmp_path):
    target, marker = tmp_path / "opened.txt", tmp_path / "system.txt"
    code = HOOK_OFF + f"""
import os
try:
    open({str(target)!r}, "w").write("x")
    print("OPENED")
except OSError as exc:
    print("OPEN-REFUSED", exc)
print("SYSTEM", os.system("touch {marker}"), flush=True)
"""
    result = run_python(code, "")
    assert _hook_was_off(result)
    assert "OPEN-REFUSED" in result.stdout and "SYSTEM" in result.stdout
    assert not target.exists() and not marker.exists()


def _secret() -> str:
    return "sk-test-" + secrets.token_hex(16)


PROC_SNOOP = """
import os
seen = []
for pid in [p for p in os.listdir("/proc") if p.isdigit()] + ["self", str(os.getppid())] + EXTRA:
    for name in ("environ", "cmdline"):
        try:
            with open("/proc/%s/%s" % (pid, name), "rb") as f:
                seen.append(f.read().decode("utf-8", "replace")[:300])  # bwrap's cmdline holds the guard
        except OSError as exc:
            seen.append("unreadable /proc/%s/%s: %s" % (pid, name, exc))
print(repr(dict(os.environ)))
print("\\n".join(seen))
print("PIDS", sorted(p for p in os.listdir("/proc") if p.isdigit()))
"""


def test_parent_environ_secret_is_unreadable_from_the_child(monkeypatch):
    secret = _secret()
    monkeypatch.setenv("OPENAI_API_KEY", secret)  # scoped to this test
    code = HOOK_OFF + f"EXTRA = [{str(os.getpid())!r}]\n" + PROC_SNOOP
    result = run_python(code, "")
    assert _hook_was_off(result)
    assert secret not in result.stdout and secret not in result.stderr
    assert "PIDS ['1', '2']" in result.stdout  # its own PID namespace: bwrap and itself only


def test_secret_of_a_separate_parent_process_is_unreadable():
    """A helper process holds the secret in its environment and calls run_python, like an eval run."""
    secret = _secret()
    helper = (
        "import os, sys, json\n"
        "from emd.sandbox import run_python\n"
        "code = sys.stdin.read().replace('HELPER_PID', repr(str(os.getpid())))\n"
        "r = run_python(code, '')\n"
        "print(json.dumps({'stdout': r.stdout, 'stderr': r.stderr, 'status': r.status}))\n"
    )
    code = HOOK_OFF + "EXTRA = [HELPER_PID]\n" + PROC_SNOOP
    env = dict(os.environ, OPENAI_API_KEY=secret, PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, "-c", helper], input=code, capture_output=True, text=True,
                          env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "HOOK-OFF" in proc.stdout and "unreadable /proc/" in proc.stdout
    assert secret not in proc.stdout and secret not in proc.stderr


def test_home_ssh_keys_are_not_visible(tmp_path):
    fake_key = "-----FAKE KEY " + secrets.token_hex(8)
    ssh = tmp_path / ".ssh"
    ssh.mkdir()
    (ssh / "id_ed25519").write_text(fake_key)
    code = HOOK_OFF + f"""
import os, glob
for d in (os.path.expanduser("~/.ssh"), {str(Path.home() / ".ssh")!r}, "/root/.ssh", {str(ssh)!r}):
    try:
        print(d, os.listdir(d))
        for name in os.listdir(d):
            print(open(os.path.join(d, name)).read())
    except OSError as exc:
        print("NO", d, type(exc).__name__)
print("HOMES", glob.glob("/home/*") + glob.glob("/root/*") + glob.glob("/work/*"))
"""
    result = run_python(code, "")
    assert _hook_was_off(result)
    assert fake_key not in result.stdout
    assert f"NO {ssh} FileNotFoundError" in result.stdout
    assert "HOMES []" in result.stdout


def test_disk_use_is_capped_in_total_not_per_file():
    code = HOOK_OFF + """
total = 0
try:
    for i in range(40):  # 40 files of 8 MiB: each under the per-file limit, 320 MiB together
        with open("f%d" % i, "wb") as f:
            f.write(b"x" * (8 << 20))
        total += 8 << 20
except OSError as exc:
    print("STOPPED", exc.errno)
print("TOTAL", total)
"""
    result = run_python(code, "", timeout=20)
    assert "STOPPED 28" in result.stdout  # ENOSPC from the tmpfs
    total = int(result.stdout.split("TOTAL ")[1].split()[0])
    assert total <= 32 << 20


def _host_processes_with(token: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode("utf-8", "replace")
        except OSError:
            continue
        if token in cmdline:
            found.append(pid)
    return found


def test_setsid_grandchild_does_not_outlive_the_run():
    token = f"{secrets.randbelow(10**6)}.{secrets.randbelow(10**6)}"
    code = HOOK_OFF + FORK_EXEC + f"""
import os, time
fork_exec_shell("setsid sleep {token} &", setsid=True)
try:
    if os.fork() == 0:
        os.setsid()
        os.execv("/bin/sleep", ["sleep", "{token}"])
except OSError as exc:
    print("FORK-REFUSED", exc, flush=True)
time.sleep(60)
"""
    result = run_python(code, "", timeout=2)
    assert result.status == "timeout"
    assert "FORK-REFUSED" in result.stdout
    assert _host_processes_with(token) == []


def test_infinite_loop_ends_at_the_timeout_with_the_hook_off():
    result = run_python(HOOK_OFF + "while True:\n    pass\n", "", timeout=1.0)
    assert _hook_was_off(result) and result.status == "timeout" and not result.passed


def test_socket_reaches_no_server_on_the_host():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.2)
    port = server.getsockname()[1]
    connected = []
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
                connected.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    code = HOOK_OFF + f"""
import _socket
s = _socket.socket(_socket.AF_INET, _socket.SOCK_STREAM)
s.settimeout(2)
try:
    s.connect(("127.0.0.1", {port}))
    print("CONNECTED")
except OSError as exc:
    print("NO-NETWORK", exc)
"""
    try:
        result = run_python(code, "", timeout=10)
    finally:
        stop.set()
        thread.join()
        server.close()
    assert _hook_was_off(result) and "NO-NETWORK" in result.stdout
    assert connected == []


def test_os_system_with_the_hook_off_runs_nothing(tmp_path):
    marker = tmp_path / "ran.txt"
    code = HOOK_OFF + f"import os\nprint('RC', os.system('touch {marker}'))\n"
    result = run_python(code, "")
    assert _hook_was_off(result) and "RC " in result.stdout
    assert not marker.exists()


def test_fork_bomb_is_bounded():
    code = HOOK_OFF + """
import os
made = 0
try:
    for _ in range(10_000):
        if os.fork() == 0:
            while True:
                pass
        made += 1
except OSError as exc:
    print("REFUSED", exc)
print("MADE", made)
"""
    result = run_python(code, "", timeout=5)
    assert _hook_was_off(result)
    assert "MADE 0" in result.stdout


def test_20_gb_allocation_fails_even_after_trying_to_raise_the_limit():
    code = HOOK_OFF + """
import resource
try:
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    print("RAISED")
except (ValueError, OSError) as exc:
    print("LIMIT-KEPT", exc)
blob = bytearray(20 * 1024 ** 3)
"""
    result = run_python(code, "", memory_mb=512)
    assert _hook_was_off(result) and "LIMIT-KEPT" in result.stdout
    assert result.status == "failed" and "MemoryError" in result.stderr


def test_plain_write_outside_with_the_hook_off(tmp_path):
    target = tmp_path / "plain.txt"
    code = HOOK_OFF + f"""
for path in ({str(target)!r}, "/usr/emd-escape.txt", "/escape.txt", "/proc/emd-escape"):
    try:
        open(path, "w").write("x")
        print("WROTE", path)
    except OSError as exc:
        print("REFUSED", path, type(exc).__name__)
"""
    result = run_python(code, "")
    assert _hook_was_off(result)
    assert "WROTE" not in result.stdout and not target.exists()
    assert not Path("/usr/emd-escape.txt").exists()
