"""Content-addressed cache of reference results (vanilla and control evaluations, control adapters).

A reference is identified by the digest of everything that changes it: model URI and weights
identity, training config and data digest (control), evaluation config, item versions and judge id.
Reruns with the same content reuse it instead of retraining or re-evaluating; anything that changes
the content gives a new key, so a stale entry is never reused. Entries are written into a temporary
folder and renamed, so an interrupted run leaves either a whole entry or none, and every entry is
sealed (:func:`emd.storage.seal`): ``result.json``, ``content.json`` and the adapter files are
checked against the stored digest on load, and an entry that was edited or damaged is set aside
with a warning and recomputed, never used.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from . import storage
from .storage import atomic_dir

log = logging.getLogger(__name__)

SCHEMA = 3  # bump when the stored result layout or a metric definition changes (3: sealed entries)


def content_key(content: dict[str, Any]) -> str:
    """:func:`emd.storage.digest` of ``content`` plus the schema version."""
    return storage.digest({"schema": SCHEMA, **content})


def references_dir() -> Path:
    """``<cache>/references`` (see :func:`emd.storage.cache_dir`)."""
    return storage.cache_dir("references")


def entry_path(kind: str, key: str) -> Path:
    """Folder of one cached reference."""
    return references_dir() / f"{kind}-{key[:24]}"


def load(kind: str, key: str, shared=None) -> dict | None:
    """The cached result of ``kind``/``key`` (with ``"path"`` set to its folder), or None.

    None also when the entry fails its integrity check (it is then moved aside with a warning).
    ``shared`` (:class:`emd.shared_refs.SharedReferences`): on a local miss, the entry published on the
    tracking server is downloaded into the local cache first (``"shared": True`` in the result)."""
    p = storage.open_sealed(entry_path(kind, key), what=f"{kind} reference")
    fetched = False
    if p is None and shared is not None and shared.fetch(kind, key, entry_path(kind, key)):
        p, fetched = storage.open_sealed(entry_path(kind, key), what=f"{kind} reference from the tracking server"), True
    if p is None:
        return None
    try:
        data = json.loads((p / "result.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):  # sealed but unreadable: the seal was written over a bad file
        log.warning("%s reference %s has an unreadable result.json; recomputing", kind, p)
        storage.set_aside(p)
        return None
    data["path"] = str(p)
    data["shared"] = fetched
    return data


def store(kind: str, key: str, result: dict, files: dict[str, str | Path] | None = None,
          content: dict | None = None, shared=None) -> Path:
    """Write a sealed reference atomically. ``files`` maps names in the entry to local files/folders to copy;
    ``shared``: the entry is also published on the tracking server (a failure there is a warning)."""
    final = entry_path(kind, key)
    with atomic_dir(final) as tmp:
        for name, src in (files or {}).items():
            src = Path(src)
            if src.is_dir():
                shutil.copytree(src, tmp / name)
            else:
                shutil.copy2(src, tmp / name)
        (tmp / "content.json").write_text(json.dumps(content or {}, indent=2, sort_keys=True, default=str))
        (tmp / "result.json").write_text(json.dumps(result, default=str))
        storage.seal(tmp, kind=kind, key=key, schema=SCHEMA)
    if shared is not None:
        try:
            shared.publish(kind, key, final)
        except Exception as e:  # the local entry stands; other machines compute their own
            log.warning("%s reference %s could not be published to the tracking server: %s", kind, key[:24], e)
    return final
