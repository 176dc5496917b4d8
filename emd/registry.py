"""What a registered version records about its base model, and how it becomes an MLflow Model.

A version's source is ``runs:/<run>/model``: a pyfunc model (:mod:`emd.pyfunc_model`) holding the
adapter as an artifact and the base model as a *reference* (its URI, dtype, chat-template variables
and revision in ``model_config``), so ``mlflow.pyfunc.load_model("models:/<name>@<alias>")`` and
``mlflow models serve`` open it without copying the base weights. The base model's id and revision
are also version tags (``base_model``, ``base_model_revision``). See docs/training.md#registry.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any


def base_revision(uri: str) -> str:
    """The revision of a base model URI, read without loading it.

    hub id: the cached commit (``refs/main``); a local snapshot folder: its commit; another local
    folder: ``files-<digest of config.json and the weight files' names and sizes>``; embedded:/gguf:
    the converted folder's name (it carries the GGUF digest); random:<size>: ``random-<size>-seed0``."""
    from .model_sources import parse_model_uri, resolve_model_dir

    provider, arg = parse_model_uri(uri)
    if provider == "random":
        return f"random-{arg}-seed0"
    if provider in ("embedded", "gguf"):
        return Path(resolve_model_dir(uri)).name
    path = Path(os.path.expanduser(arg))
    if path.exists():
        if path.parent.name == "snapshots":
            return path.name
        h = hashlib.sha256()
        if (path / "config.json").is_file():
            h.update((path / "config.json").read_bytes())
        for p in sorted(path.glob("*.safetensors")) + sorted(path.glob("*.bin")):
            h.update(f"{p.name}:{p.stat().st_size}".encode())
        return "files-" + h.hexdigest()[:16]
    try:
        from huggingface_hub.constants import HF_HUB_CACHE

        ref = Path(HF_HUB_CACHE) / f"models--{arg.replace('/', '--')}" / "refs" / "main"
        return ref.read_text().strip() if ref.is_file() else "unknown"
    except Exception:
        return "unknown"


def model_config(base_model: str, dtype: str = "auto", template_kwargs: dict | None = None) -> dict[str, Any]:
    """The pyfunc ``model_config`` of a version: what :class:`emd.pyfunc_model.AdapterModel` loads."""
    return {"base_model": base_model, "base_model_revision": base_revision(base_model), "dtype": dtype,
            "template_kwargs": dict(template_kwargs or {})}


def package_dir() -> Path:
    """The emd package folder (shipped with each version as code, so the version loads the code it was
    trained with)."""
    return Path(__file__).resolve().parent
