"""``openai:<model>``: any OpenAI-compatible chat-completions server as the judge.

The base URL comes from ``base_url=`` or ``$OPENAI_BASE_URL`` (the official API when neither is
set); the key comes from ``$OPENAI_API_KEY`` only ("EMPTY" when unset, which local servers such as
vLLM accept). The key is never logged, stored, put in a verdict or part of a cache key.

Prompts are the YAML templates of ``evaluation/judge_prompts/``; temperature 0. Answers are parsed
strictly (:mod:`emd.judges.parsing`): an unclear answer is ``unparsed`` with its raw text, a judge
that declines is ``refused``. 429, 5xx, timeouts and connection errors are retried with exponential
backoff (``base_delay * 2**attempt``, capped at ``max_delay``); when retries run out the verdict is
``error``. Other 4xx (bad model name, bad key) fail at once as ``error``. Queries run concurrently
on a thread pool of ``max_concurrency`` workers; each answer is reported through ``on_verdict`` as it
arrives, so the cache stores it before the batch ends.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence

from ..errors import ConfigError
from .base import ConsistencyQuery, JudgeStats, NumericQuery, PropositionQuery, Verdict
from .parsing import looks_like_refusal, parse_bounds, parse_choice
from .prompts import (load_templates, render_consistency, render_numeric, render_proposition,
                      templates_sha, templates_version)

BINARY_LABELS = ("A", "B", "C", "D")
OnVerdict = Callable[[int, Verdict], None]
YES_NO = ("yes", "no")


class OpenAIJudge:
    """Judge through an OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    def __init__(self, model: str, base_url: str | None = None, timeout: float = 60.0,
                 max_retries: int = 5, base_delay: float = 1.0, max_delay: float = 30.0,
                 max_concurrency: int = 8, max_tokens: int = 32, prompts_dir: str | None = None):
        if not model:
            raise ConfigError("openai judge needs a model name: openai:<model>")
        if max_retries < 0 or max_concurrency < 1 or timeout <= 0 or base_delay < 0:
            raise ConfigError(f"openai judge: max_retries must be >= 0 (got {max_retries}), max_concurrency >= 1 "
                              f"(got {max_concurrency}), timeout > 0 (got {timeout}), base_delay >= 0 (got {base_delay})")
        import openai

        self._openai = openai
        self.model = model
        self.id = f"openai:{model}"
        self.templates = load_templates(prompts_dir)
        self.version = templates_version(self.templates)
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.max_concurrency = int(max_concurrency)
        self.max_tokens = int(max_tokens)
        self.stats = JudgeStats()
        self._lock = threading.Lock()
        # Retries are ours (so they are counted and the delays configurable): the client's are off.
        self._client = openai.OpenAI(api_key=os.environ.get("OPENAI_API_KEY") or "EMPTY", base_url=self.base_url,
                                     timeout=self.timeout, max_retries=0)

    @property
    def cache_params(self) -> dict:
        """Sampling parameters and template hash: part of the cache key (the key/URL are not)."""
        return {"temperature": 0.0, "max_tokens": self.max_tokens, "templates": templates_sha(self.templates)}

    def __repr__(self) -> str:  # never show the client (it holds the key)
        return f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r})"

    def _count(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self.stats, k, getattr(self.stats, k) + v)

    def _scrub(self, text: str) -> str:
        key = os.environ.get("OPENAI_API_KEY")
        return text.replace(key, "***") if key else text

    def _complete(self, messages: list[dict]) -> tuple[str, str, str]:
        """(status, text, detail): status "ok" / "refused" / "error" after retries."""
        o = self._openai
        last = ""
        for attempt in range(self.max_retries + 1):
            if attempt:
                self._count(retries=1)
                time.sleep(min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
            self._count(calls=1)
            try:
                resp = self._client.chat.completions.create(model=self.model, messages=messages, temperature=0.0,
                                                            max_tokens=self.max_tokens)
            except (o.RateLimitError, o.APITimeoutError, o.APIConnectionError, o.InternalServerError) as e:
                last = f"{type(e).__name__}: {e}"
                continue
            except o.APIStatusError as e:
                if e.status_code == 429 or e.status_code >= 500:
                    last = f"HTTP {e.status_code}: {e}"
                    continue
                return "error", "", self._scrub(f"HTTP {e.status_code} (not retried): {e}")
            except o.APIError as e:  # malformed response bodies and the like
                last = f"{type(e).__name__}: {e}"
                continue
            choices = getattr(resp, "choices", None) or []
            if not choices:
                last = "response without choices"
                continue
            msg = choices[0].message
            if getattr(msg, "refusal", None) or choices[0].finish_reason == "content_filter":
                return "refused", (msg.content or msg.refusal or ""), "the judge model refused"
            return "ok", msg.content or "", ""
        return "error", "", self._scrub(f"gave up after {self.max_retries + 1} attempts; last: {last}")[:500]

    def _verdict(self, messages: list[dict], parse: Callable[[str], Verdict]) -> Verdict:
        status, text, detail = self._complete(messages)
        if status == "error":
            self._count(failures=1)
            return Verdict("error", detail=detail)
        if status == "refused":
            return Verdict("refused", raw=text, detail=detail)
        v = parse(text)
        if v.state == "unparsed" and looks_like_refusal(text):
            return Verdict("refused", raw=text, detail="the judge model declined")
        return v

    def _map(self, fn, items: Sequence, on_verdict: OnVerdict | None = None) -> list[Verdict]:
        def one(i: int) -> Verdict:
            v = fn(items[i])
            if on_verdict is not None:  # the caller stores it now: a kill later loses nothing paid for
                on_verdict(i, v)
            return v

        if len(items) <= 1 or self.max_concurrency == 1:
            return [one(i) for i in range(len(items))]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(one, range(len(items))))

    @staticmethod
    def _parse_choice(labels: tuple[str, ...]) -> Callable[[str], Verdict]:
        def parse(text: str) -> Verdict:
            lab = parse_choice(text, labels)
            if lab is None:
                return Verdict("unparsed", raw=text, detail=f"expected one of {list(labels)}")
            return Verdict("scored", label=lab, raw=text)
        return parse

    @staticmethod
    def _parse_bounds(text: str) -> Verdict:
        b = parse_bounds(text)
        if b is None:
            return Verdict("unparsed", raw=text, detail='expected {"lower": number|null, "upper": number|null}')
        return Verdict("scored", lower=b[0], upper=b[1], raw=text)

    def judge_propositions(self, queries: Sequence[PropositionQuery], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        """A/B/C/D for each response via the ``mask_binary`` template; ``on_verdict(i, verdict)`` is
        called as each answer arrives (from worker threads)."""
        t, parse = self.templates["mask_binary"], self._parse_choice(BINARY_LABELS)
        return self._map(lambda q: self._verdict(render_proposition(t, q), parse), list(queries), on_verdict)

    def judge_numeric(self, queries: Sequence[NumericQuery], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        """JSON bounds for each response via the ``mask_numeric`` template."""
        t = self.templates["mask_numeric"]
        return self._map(lambda q: self._verdict(render_numeric(t, q), self._parse_bounds), list(queries), on_verdict)

    def judge_consistency(self, queries: Sequence[ConsistencyQuery], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        """yes/no for each text via the ``consistency`` template."""
        t, parse = self.templates["consistency"], self._parse_choice(YES_NO)
        return self._map(lambda q: self._verdict(render_consistency(t, q), parse), list(queries), on_verdict)

    def close(self) -> None:
        """Close the HTTP client."""
        try:
            self._client.close()
        except Exception:  # pragma: no cover - closing is best effort
            pass
