"""The operating-system half of :mod:`emd.sandbox`: a bubblewrap (``bwrap``) command line and a seccomp filter.

The child sees a new root file system built only from read-only views of ``/usr`` (and the
``/lib*``, ``/bin`` links or folders) and of the Python installation (its ``site-packages``
hidden), its own ``/proc`` (a new PID namespace: it cannot see the parent's processes, so no
``/proc/<ppid>/environ``), a minimal ``/dev``, and one writable place: ``/box``, a tmpfs with a size
cap. No ``$HOME``, no ``/work``, no ``/tmp`` of the host. New network (loopback only, down), IPC, UTS
and cgroup namespaces; an empty environment apart from ``PATH``, ``HOME``, ``LC_ALL``.

Who the child runs as:

- started by an ordinary user (mode ``userns``): bwrap creates a user namespace, and
  ``--disable-userns`` forbids nested ones;
- started by root (mode ``drop``): bwrap runs privileged (a user namespace would map the child
  back to root on the host, which is exempt from ``RLIMIT_NPROC``), keeps only
  ``CAP_SETUID``/``CAP_SETGID``, and the child drops to ``nobody`` (uid/gid 65534, no capabilities)
  before it compiles any model text. Where root cannot do that (a container without
  ``CAP_SYS_ADMIN``), ``userns`` with every capability dropped is tried next: the child is then root
  of its namespace only, and the seccomp filter is what bounds its processes.

Either way bwrap sets ``no_new_privs``, mounts everything ``nosuid``, runs the child in a new
session (``--new-session``) and kills it when bwrap dies (``--die-with-parent``); as PID 1 of the
namespace, bwrap's end takes every process inside with it.

The seccomp filter (classic BPF, built here: no libseccomp needed) refuses new processes (``fork``,
``vfork``, ``clone`` without ``CLONE_THREAD``, ``clone3``: threads still work, glibc falls back to
``clone``), namespace and mount calls, ``ptrace``, ``bpf``, ``memfd_create`` (RAM outside the tmpfs
cap), keyrings, ``io_uring``, ``userfaultfd`` and ``perf_event_open``. It exists for x86_64 and aarch64;
elsewhere :func:`seccomp_program` returns None and the sandbox is reported unavailable.
"""

from __future__ import annotations

import os
import platform
import shutil
import site
import struct
import sys

__all__ = ["MODES", "NOBODY", "bwrap_command", "find_bwrap", "seccomp_program"]

NOBODY = 65534
"""uid and gid the child drops to when the parent runs as root."""

BOX = "/box"
"""The child's working directory inside the sandbox (the only writable place)."""

# classic BPF opcodes (linux/filter.h) and seccomp return values (linux/seccomp.h)
_LD_W_ABS, _JEQ_K, _JGE_K, _JSET_K, _RET_K = 0x20, 0x15, 0x35, 0x45, 0x06
_RET_ALLOW, _RET_ERRNO, _RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
_EPERM, _EAGAIN, _ENOSYS = 1, 11, 38
_CLONE_THREAD = 0x00010000
_CLONE_NAMESPACES = 0x7E020000  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET

# arch -> (AUDIT_ARCH value, {syscall: number}); numbers from the kernel's syscall tables
_ARCHES = {
    "x86_64": (0xC000003E, {
        "clone": 56, "fork": 57, "vfork": 58, "clone3": 435, "unshare": 272, "setns": 308,
        "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "ptrace": 101, "bpf": 321,
        "memfd_create": 319, "add_key": 248, "request_key": 249, "keyctl": 250, "perf_event_open": 298,
        "userfaultfd": 323, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "mount_setattr": 442, "process_vm_writev": 311, "kexec_load": 246,
    }),
    "aarch64": (0xC00000B7, {
        "clone": 220, "clone3": 435, "unshare": 97, "setns": 268, "mount": 40, "umount2": 39,
        "pivot_root": 41, "chroot": 51, "ptrace": 117, "bpf": 280, "memfd_create": 279,
        "add_key": 217, "request_key": 218, "keyctl": 219, "perf_event_open": 241, "userfaultfd": 282,
        "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
        "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
        "mount_setattr": 442, "process_vm_writev": 271, "kexec_load": 104,
    }),
}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def seccomp_program() -> bytes | None:
    """The seccomp filter as the bytes of a ``struct sock_filter`` array (what ``bwrap --seccomp`` reads).

    None on an architecture without a syscall table here.
    """
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if machine not in _ARCHES:
        return None
    arch, numbers = _ARCHES[machine]
    nr_offset, arch_offset, arg0_offset = 0, 4, 16  # struct seccomp_data; arg0's low half (little endian)
    fork_like = [numbers[name] for name in ("fork", "vfork") if name in numbers]
    denied = [n for name, n in numbers.items() if name not in ("clone", "clone3", "fork", "vfork")]
    prog = [
        _insn(_LD_W_ABS, 0, 0, arch_offset),
        _insn(_JEQ_K, 1, 0, arch),
        _insn(_RET_K, 0, 0, _RET_KILL_PROCESS),  # another ABI (i386 on x86_64) would bypass the table
        _insn(_LD_W_ABS, 0, 0, nr_offset),
    ]
    if machine == "x86_64":
        prog += [_insn(_JGE_K, 0, 1, 0x40000000), _insn(_RET_K, 0, 0, _RET_ERRNO | _ENOSYS)]  # x32 ABI
    # clone: only threads, and no namespace flags
    prog += [
        _insn(_JEQ_K, 0, 5, numbers["clone"]),
        _insn(_LD_W_ABS, 0, 0, arg0_offset),
        _insn(_JSET_K, 2, 0, _CLONE_NAMESPACES),
        _insn(_JSET_K, 0, 1, _CLONE_THREAD),
        _insn(_RET_K, 0, 0, _RET_ALLOW),
        _insn(_RET_K, 0, 0, _RET_ERRNO | _EAGAIN),
        # clone3 passes its flags in memory a filter cannot read: ENOSYS makes glibc use clone
        _insn(_JEQ_K, 0, 1, numbers["clone3"]),
        _insn(_RET_K, 0, 0, _RET_ERRNO | _ENOSYS),
    ]
    for n in fork_like:
        prog += [_insn(_JEQ_K, 0, 1, n), _insn(_RET_K, 0, 0, _RET_ERRNO | _EAGAIN)]
    for n in denied:
        prog += [_insn(_JEQ_K, 0, 1, n), _insn(_RET_K, 0, 0, _RET_ERRNO | _EPERM)]
    prog.append(_insn(_RET_K, 0, 0, _RET_ALLOW))
    return b"".join(prog)


def _python_dirs() -> tuple[str, list[str]]:
    """The interpreter to run and the folders to bind read-only for it (outside ``/usr``)."""
    exe = os.path.realpath(sys.executable)
    dirs: list[str] = []
    for path in (sys.base_prefix, os.path.dirname(exe)):
        real = os.path.realpath(path)
        if not any(real == d or real.startswith(d.rstrip("/") + "/") for d in ["/usr", *dirs]):
            dirs.append(real)
    return exe, dirs


MODES = ("drop", "userns")
"""``drop``: privileged bwrap, the child becomes ``nobody`` (needs root); ``userns``: a user namespace."""


def bwrap_command(bwrap: str, disk_bytes: int, seccomp_fd: int, mode: str) -> list[str]:
    """The ``bwrap`` argument list up to (and including) the interpreter; Python's arguments follow.

    Args:
        bwrap: path of the ``bwrap`` executable.
        disk_bytes: size cap of the writable tmpfs ``/box``.
        seccomp_fd: a readable file descriptor holding :func:`seccomp_program` (inherited by bwrap).
        mode: one of :data:`MODES` (see the module docstring).
    """
    cmd = [bwrap]
    if mode == "drop":
        cmd += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                "--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    elif mode == "userns":
        cmd += ["--unshare-all", "--unshare-user", "--disable-userns"]
        if os.geteuid() == 0:
            cmd += ["--cap-drop", "ALL"]  # root keeps every capability inside otherwise
    else:
        raise ValueError(f"bwrap_command: mode must be one of {MODES}, got {mode!r}")
    cmd += ["--die-with-parent", "--new-session", "--clearenv",
            "--setenv", "PATH", "/usr/bin:/bin", "--setenv", "HOME", BOX, "--setenv", "TMPDIR", BOX,
            "--setenv", "LC_ALL", "C.UTF-8", "--setenv", "PYTHONIOENCODING", "utf-8",
            "--ro-bind", "/usr", "/usr"]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(top):
            cmd += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            cmd += ["--ro-bind", top, top]
    exe, dirs = _python_dirs()
    binds = dirs + (["/etc/ld.so.cache"] if os.path.isfile("/etc/ld.so.cache") else [])  # libc's loader cache
    made: set[str] = set()
    for path in binds:
        # bwrap would create missing parents with the host's mode (/root is 0700): make them
        # traversable, or the child cannot reach the interpreter once it is nobody
        parents = []
        parent = os.path.dirname(path)
        while parent not in ("/", "") and parent not in made:
            parents.append(parent)
            parent = os.path.dirname(parent)
        for d in reversed(parents):
            cmd += ["--perms", "0755", "--dir", d]
            made.add(d)
        cmd += ["--ro-bind", path, path]
    # third-party packages stay out of view: model code gets the standard library only
    for sp in site.getsitepackages():
        real = os.path.realpath(sp)
        if os.path.isdir(real) and any(real == d or real.startswith(d + "/") or real.startswith("/usr/")
                                       for d in dirs):
            cmd += ["--tmpfs", real, "--remount-ro", real]
    cmd += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/dev",
            "--size", str(int(disk_bytes)), "--perms", "0777", "--tmpfs", BOX,
            "--remount-ro", "/", "--chdir", BOX, "--seccomp", str(seccomp_fd), "--", exe]
    return cmd


def find_bwrap() -> str | None:
    """Path of the ``bwrap`` executable, or None."""
    return shutil.which("bwrap")
