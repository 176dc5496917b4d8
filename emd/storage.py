"""emd's on-disk caches: where they live, how content is keyed, and how an entry proves it is intact.

- :func:`cache_dir`: ``$EMD_CACHE_DIR`` or ``~/.cache/emd`` (``~`` expanded, created on use).
- :func:`canonical_json` / :func:`digest`: the one canonical form of a JSON-like value (sorted keys,
  compact separators, UTF-8, ``default=str``) and its sha256. Every content key is built with them.
- :func:`file_digest` / :func:`folder_digest`: sha256 of a file's bytes, and of a folder (every file's
  relative name and content).
- :func:`atomic_dir`: a folder appears complete or not at all.
- Sealed entries: :func:`seal` writes a manifest (``emd_manifest.json``) holding each file's size and
  sha256 and the folder digest; :func:`open_sealed` verifies it before an entry is used. An entry that fails
  (no manifest, a file edited, truncated, added or removed) is logged as a warning naming the folder
  and treated as a miss: it is moved aside to ``<name>.corrupt-<timestamp>`` (or removed) so the
  caller recomputes it. A cached result is never used unverified.
- :func:`set_aside`: move a damaged file or folder out of the way under a name saying so.

Nothing here changes process-wide state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)

MANIFEST = "emd_manifest.json"
STAMP = "emd_verified.json"  # size and mtime of each file when its digest last matched (optional fast path)
MANIFEST_FORMAT = 1
_META = (MANIFEST, STAMP)
_CHUNK = 1 << 20


def cache_dir(*parts: str) -> Path:
    """emd's cache folder (``$EMD_CACHE_DIR`` or ``~/.cache/emd``, ``~`` expanded), or a subfolder of
    it named by ``parts``; created if missing."""
    base = Path(os.environ.get("EMD_CACHE_DIR") or "~/.cache/emd").expanduser()
    path = base.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def canonical_json(obj: Any) -> str:
    """The canonical JSON text of ``obj``: sorted keys, ``,``/``:`` separators, non-ASCII kept as is,
    anything not JSON-native written as ``str(value)``. Equal content gives equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def digest(obj: Any) -> str:
    """sha256 hex of :func:`canonical_json` of ``obj`` (UTF-8)."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def file_digest(path: str | Path) -> str:
    """sha256 hex of a file's bytes (read in 1 MiB blocks)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _files(root: Path, exclude: tuple[str, ...]) -> list[tuple[str, Path]]:
    out = []
    for p in root.rglob("*"):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in exclude:
            out.append((rel, p))
    return sorted(out)


def _combine(file_digests: dict[str, str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(file_digests):
        h.update(f"{rel}\0{file_digests[rel]}\n".encode("utf-8"))
    return h.hexdigest()


def folder_digest(path: str | Path, exclude: tuple[str, ...] = _META) -> str:
    """sha256 hex over every file under ``path`` (relative name and content digest, in name order);
    files named in ``exclude`` (relative paths; the manifest and stamp by default) are left out."""
    return _combine({rel: file_digest(p) for rel, p in _files(Path(path), exclude)})


@contextmanager
def atomic_dir(final: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``final`` to fill; on success it replaces ``final`` by one rename.

    An exception (or a kill) leaves ``final`` as it was, and the partial folder is removed (or, after
    a kill, left as an ignored ``<name>.tmp*`` sibling)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=final.name + ".tmp", dir=final.parent))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def set_aside(path: str | Path) -> Path:
    """Rename a damaged file or folder to ``<name>.corrupt-<UTC timestamp>`` beside it; returns the new path."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    return target


def _write_json(path: Path, obj: Any) -> None:
    # Written beside the folder, not in it (a reader listing the folder must never see a stray
    # file), then renamed in: readers see the old file or the new one, never half of one.
    fd, tmp = tempfile.mkstemp(prefix=f".{path.parent.name}.{path.name}.", dir=path.parent.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(obj, indent=2, sort_keys=True, default=str))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _stat_stamp(folder: Path) -> dict:
    return {rel: [p.stat().st_size, p.stat().st_mtime_ns] for rel, p in _files(folder, _META)}


def seal(folder: str | Path, **info: Any) -> dict:
    """Write the manifest of ``folder``: each file's size and sha256, their :func:`folder_digest`, and
    ``info``. Call it last, inside :func:`atomic_dir`, once every file is in place."""
    folder = Path(folder)
    files = {rel: {"size": p.stat().st_size, "sha256": file_digest(p)} for rel, p in _files(folder, _META)}
    manifest = {"format": MANIFEST_FORMAT, "digest": _combine({k: v["sha256"] for k, v in files.items()}),
                "files": files, **info}
    _write_json(folder / MANIFEST, manifest)
    _write_json(folder / STAMP, _stat_stamp(folder))
    return manifest


def read_manifest(folder: str | Path) -> dict | None:
    """The manifest of a sealed folder, or None when it is missing or unreadable."""
    try:
        data = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else None


def check_seal(folder: str | Path, trust_stamp: bool = False) -> str | None:
    """Why ``folder`` fails its manifest (a short reason naming the file), or None when every file
    matches it.

    Names and sizes are compared first (cheap: catches truncation, added or missing files), then each
    file's digest. ``trust_stamp=True`` (large entries such as converted weights) skips the digests
    when every file still has the size and modification time it had when its digest last matched;
    after a full match the stamp is renewed."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest is None:
        return f"no readable {MANIFEST}"
    try:
        want = {k: (int(v["size"]), str(v["sha256"])) for k, v in manifest["files"].items() if k not in _META}
    except (KeyError, TypeError, ValueError):
        return f"{MANIFEST} is not in the expected format"
    found = dict(_files(folder, _META))
    if set(found) != set(want):
        missing, extra = sorted(set(want) - set(found)), sorted(set(found) - set(want))
        return f"files differ from the manifest (missing {missing}, unexpected {extra})"
    for rel, p in found.items():
        if p.stat().st_size != want[rel][0]:
            return f"{folder / rel} is {p.stat().st_size} bytes, the manifest says {want[rel][0]}"
    now = _stat_stamp(folder)
    if trust_stamp:
        try:
            if json.loads((folder / STAMP).read_text(encoding="utf-8")) == now:
                return None
        except (OSError, ValueError):
            pass
    for rel, p in found.items():
        if file_digest(p) != want[rel][1]:
            return f"{folder / rel} does not match its recorded sha256 (it was changed after it was stored)"
    if _combine({k: v[1] for k, v in want.items()}) != manifest.get("digest"):
        return f"{MANIFEST} digest does not match its file list"
    if trust_stamp:
        try:
            _write_json(folder / STAMP, now)
        except OSError:  # a read-only cache still verifies, only slower
            pass
    return None


def open_sealed(folder: str | Path, what: str = "cache entry", remove: bool = False,
                trust_stamp: bool = False) -> Path | None:
    """``folder`` if it exists and passes :func:`check_seal`; else None (a miss: recompute it).

    A folder that fails is logged as a warning naming it and the reason, then moved aside
    (:func:`set_aside`) or, with ``remove=True`` (large, rebuildable entries), deleted."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    reason = check_seal(folder, trust_stamp=trust_stamp)
    if reason is None:
        return folder
    if remove:
        shutil.rmtree(folder, ignore_errors=True)
        where = "removed it"
    else:
        where = f"moved it aside to {set_aside(folder)}"
    log.warning("%s %s failed its integrity check (%s); %s and will recompute it", what, folder, reason, where)
    return None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (owners of runs and work folders are checked by it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
