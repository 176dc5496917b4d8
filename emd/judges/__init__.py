"""Judges named by ``provider:model`` URIs, every one behind the same on-disk cache.

``get_judge("embed:minilm")`` (offline default), ``get_judge("openai:gpt-4o-mini")`` (any
OpenAI-compatible server via ``OPENAI_BASE_URL``; key from ``OPENAI_API_KEY`` only) and
``get_judge("hf:/path/to/model")`` (a local causal LM choosing by log-probability). The URI is split
once on the first ``:``; the provider is looked up in :data:`PROVIDERS`, whose entries are
``"module:factory"`` strings imported on first use, so ``import emd.judges`` loads neither torch,
openai nor sentence-transformers.
"""

from __future__ import annotations

import difflib
import importlib
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .base import (VERDICT_STATES, ConsistencyQuery, Judge, JudgeStats, NumericQuery, PropositionQuery,
                   Verdict)
from .cache import CachedJudge, JudgeCache, default_cache_path

# provider -> "module:factory"; factory(model_part: str, **kw) -> backend. Imported lazily.
PROVIDERS: dict[str, str] = {
    "embed": "emd.judges.embed:EmbedJudge",
    "openai": "emd.judges.openai_judge:OpenAIJudge",
    "hf": "emd.judges.hf:HFJudge",
}
URI_FORMS = ("embed:minilm", "openai:<model>", "hf:<path>")
DEFAULT_JUDGE = "embed:minilm"

__all__ = ["get_judge", "parse_judge_uri", "validate_judge_uri", "PROVIDERS", "DEFAULT_JUDGE", "Judge",
           "CachedJudge", "JudgeCache", "JudgeStats", "Verdict", "VERDICT_STATES", "PropositionQuery",
           "NumericQuery", "ConsistencyQuery"]


def parse_judge_uri(uri: str) -> tuple[str, str]:
    """Split ``provider:model`` once; unknown providers raise ConfigError with the allowed forms."""
    if not isinstance(uri, str) or ":" not in uri:
        raise ConfigError(f"judge {uri!r} is not a judge URI; allowed: {', '.join(URI_FORMS)}")
    provider, model = uri.split(":", 1)
    if provider not in PROVIDERS:
        close = difflib.get_close_matches(provider, list(PROVIDERS), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"judge provider {provider!r} in {uri!r} is unknown{hint}; allowed: {', '.join(URI_FORMS)}")
    if not model.strip():
        raise ConfigError(f"judge {uri!r} names no model; allowed: {', '.join(URI_FORMS)}")
    return provider, model


def validate_judge_uri(uri: str) -> None:
    """Check a judge URI without loading anything (for config validation)."""
    parse_judge_uri(uri)


def _factory(provider: str):
    module, _, attr = PROVIDERS[provider].partition(":")
    return getattr(importlib.import_module(module), attr)


def get_judge(uri: str, cache_dir: str | Path | None = None, *, cache: bool = True, **kw: Any) -> CachedJudge:
    """Build the judge ``uri`` wrapped in the on-disk cache.

    ``cache_dir``: folder of ``judge_cache.sqlite`` (default ``$EMD_CACHE_DIR`` or ``~/.cache/emd``);
    ``cache=False`` skips the disk cache (stats still counted). Other keywords go to the backend
    (e.g. ``base_url``, ``max_retries``, ``max_concurrency`` for ``openai:``; thresholds for ``embed:``).
    """
    provider, model = parse_judge_uri(uri)
    try:
        backend = _factory(provider)(model, **kw)
    except TypeError as e:
        raise ConfigError(f"judge {uri!r}: bad option: {e}") from e
    store = JudgeCache(default_cache_path(cache_dir)) if cache else None
    return CachedJudge(backend, store)


def judge_env_summary() -> dict[str, str]:
    """What configures the API judge, without secrets (for logging): base URL and whether a key is set."""
    return {"OPENAI_BASE_URL": os.environ.get("OPENAI_BASE_URL", ""),
            "OPENAI_API_KEY_set": str(bool(os.environ.get("OPENAI_API_KEY")))}
