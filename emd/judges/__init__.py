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

__all__ = ["get_judge", "preflight", "parse_judge_uri", "validate_judge_uri", "PROVIDERS", "DEFAULT_JUDGE", "Judge",
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


# Generic judge settings (config keys judge_timeout / judge_retries / judge_concurrency) -> the keyword
# each backend takes. Backends not listed ignore them (local judges neither time out nor retry).
_GENERIC = {"openai": {"timeout": "timeout", "retries": "max_retries", "concurrency": "max_concurrency"}}


def _uri_and_options(judge: Any, timeout: float | None, retries: int | None,
                     concurrency: int | None) -> tuple[str, dict]:
    """A URI or a JudgeSpec-like object (``.judge`` + ``judge_timeout``...) -> (uri, generic options)."""
    if isinstance(judge, str):
        uri = judge
    elif isinstance(getattr(judge, "judge", None), str):
        uri = judge.judge
        timeout = getattr(judge, "judge_timeout", None) if timeout is None else timeout
        retries = getattr(judge, "judge_retries", None) if retries is None else retries
        concurrency = getattr(judge, "judge_concurrency", None) if concurrency is None else concurrency
    else:
        raise ConfigError(f"judge {judge!r} is not a judge URI; allowed: {', '.join(URI_FORMS)}")
    generic = {"timeout": timeout, "retries": retries, "concurrency": concurrency}
    return uri, {k: v for k, v in generic.items() if v is not None}


def _backend(uri: str, generic: dict, kw: dict):
    provider, model = parse_judge_uri(uri)
    names = _GENERIC.get(provider, {})
    opts = {names[k]: v for k, v in generic.items() if k in names}
    opts.update(kw)  # a backend's own keyword wins over the generic setting
    try:
        return _factory(provider)(model, **opts)
    except TypeError as e:
        raise ConfigError(f"judge {uri!r}: bad option: {e}") from e


def get_judge(uri: Any, cache_dir: str | Path | None = None, *, cache: bool = True, timeout: float | None = None,
              retries: int | None = None, concurrency: int | None = None, **kw: Any) -> CachedJudge:
    """Build the judge ``uri`` wrapped in the on-disk cache.

    ``uri`` is a judge URI or a :class:`emd.config.JudgeSpec` (its ``judge_timeout``,
    ``judge_retries`` and ``judge_concurrency`` then apply). ``timeout`` (seconds per request),
    ``retries`` and ``concurrency`` (parallel requests) configure API judges and are ignored by local
    ones. ``cache_dir``: folder of ``judge_cache.sqlite`` (default ``$EMD_CACHE_DIR`` or
    ``~/.cache/emd``); ``cache=False`` skips the disk cache (stats still counted). Other keywords go to
    the backend (e.g. ``base_url``, ``base_delay`` for ``openai:``; thresholds for ``embed:``).
    """
    uri, generic = _uri_and_options(uri, timeout, retries, concurrency)
    backend = _backend(uri, generic, kw)
    store = JudgeCache(default_cache_path(cache_dir)) if cache else None
    return CachedJudge(backend, store)


def preflight(judge: Any, **kw: Any) -> None:
    """Start-up check of a judge, for entries to run before any model loads or any run exists.

    ``judge``: a URI, a :class:`emd.config.JudgeSpec` or a judge built by :func:`get_judge`. Each
    backend's ``check()`` runs: ``embed:`` its model files exist, ``hf:`` the folder has a config that
    loads, a tokenizer with a chat template and weights, ``openai:`` the base URL or key is set (ConfigError
    naming ``OPENAI_BASE_URL`` and ``OPENAI_API_KEY``) and the endpoint answers one cheap request
    (JudgeError naming the URL). Keywords go to the backend as in :func:`get_judge`.
    """
    built = getattr(judge, "backend", None) if isinstance(judge, CachedJudge) else None
    if built is None and not isinstance(judge, str) and not isinstance(getattr(judge, "judge", None), str):
        built = judge  # a bare backend
    if built is not None:
        _check(built)
        return
    uri, generic = _uri_and_options(judge, None, None, None)
    generic["retries"] = 0  # the check itself is one request
    backend = _backend(uri, generic, kw)
    try:
        _check(backend)
    finally:
        close = getattr(backend, "close", None)
        if callable(close):
            close()


def _check(backend: Any) -> None:
    check = getattr(backend, "check", None)
    if not callable(check):
        raise ConfigError(f"judge {getattr(backend, 'id', backend)!r} has no check(); every backend needs one")
    check()


def judge_env_summary() -> dict[str, str]:
    """What configures the API judge, without secrets (for logging): base URL and whether a key is set."""
    return {"OPENAI_BASE_URL": os.environ.get("OPENAI_BASE_URL", ""),
            "OPENAI_API_KEY_set": str(bool(os.environ.get("OPENAI_API_KEY")))}
