"""Content-addressed cache of reference results (vanilla and control evaluations, control adapters).

A reference is identified by the sha256 of everything that changes it: model URI and weights
identity, training config and data digest (control), evaluation config, item versions and judge id.
Reruns with the same content reuse it instead of retraining or re-evaluating; anything that changes
the content gives a new key, so a stale entry is never reused. Entries are written into a temporary
folder and renamed, so an interrupted run leaves either a whole entry or none.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from .models import cache_dir
from .storage import atomic_dir

SCHEMA = 2  # bump when the stored result layout or a metric definition changes (2: logprob honesty with MASK no-belief rows)


def content_key(content: dict[str, Any]) -> str:
    """sha256 of canonical JSON of ``content`` (plus the schema version)."""
    blob = json.dumps({"schema": SCHEMA, **content}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def references_dir() -> Path:
    """``<cache>/references`` (``$EMD_CACHE_DIR`` or ``~/.cache/emd``)."""
    return cache_dir() / "references"


def entry_path(kind: str, key: str) -> Path:
    """Folder of one cached reference."""
    return references_dir() / f"{kind}-{key[:24]}"


def load(kind: str, key: str) -> dict | None:
    """The cached result of ``kind``/``key`` (with ``"path"`` set to its folder), or None."""
    p = entry_path(kind, key)
    f = p / "result.json"
    if not f.is_file():
        return None
    try:
        data = json.loads(f.read_text())
    except json.JSONDecodeError:
        return None  # a corrupt entry is treated as absent and rewritten
    data["path"] = str(p)
    return data


def store(kind: str, key: str, result: dict, files: dict[str, str | Path] | None = None,
          content: dict | None = None) -> Path:
    """Write a reference atomically. ``files`` maps names in the entry to local files/folders to copy."""
    final = entry_path(kind, key)
    final.parent.mkdir(parents=True, exist_ok=True)
    with atomic_dir(final) as tmp:
        for name, src in (files or {}).items():
            src = Path(src)
            if src.is_dir():
                shutil.copytree(src, tmp / name)
            else:
                shutil.copy2(src, tmp / name)
        (tmp / "content.json").write_text(json.dumps(content or {}, indent=2, sort_keys=True, default=str))
        (tmp / "result.json").write_text(json.dumps(result, default=str))
    return final
