"""The one OpenAI-compatible chat client behind the ``openai:`` judge and the ``openai:`` user simulator.

Configuration comes from arguments and the environment only:

- base URL: ``base_url=`` or ``$OPENAI_BASE_URL`` (the official API when neither is set);
- key: ``$OPENAI_API_KEY`` only. With a base URL but no key the client sends "EMPTY" (local servers
  such as vLLM accept it). With *neither* variable set the client refuses to start
  (:class:`~emd.errors.ConfigError` naming both): it would otherwise send "EMPTY" to the public API.

The key is never logged, stored or shown: :func:`scrub` removes it (and anything that looks like a
bearer token or an ``sk-`` key) from every error text this module produces, and ``repr`` of a client
leaves it out.

Retries: 408, 409, 429, 5xx, timeouts, connection errors and malformed responses are retried up to
``max_retries`` times. The wait honours the server's ``Retry-After`` / ``retry-after-ms`` header (up
to :data:`MAX_RETRY_AFTER_S`); otherwise it is ``base_delay * 2**n`` capped at ``max_delay``, scaled by
a random factor in [0.5, 1] so that concurrent workers hitting the same rate limit do not retry in
lockstep. The openai SDK's own retries are switched off (``max_retries=0``) so that every attempt is
counted here and the delays are configurable. Other 4xx answers (unknown model, bad key) fail at
once. Requests run on a bounded thread pool (:meth:`OpenAIClient.map`, ``max_concurrency`` workers).

:func:`check_reachable` is the cheap start-up check entries run before any model loads.
"""

from __future__ import annotations

import os
import random
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

from .errors import ConfigError, JudgeError

ENV_URL = "OPENAI_BASE_URL"
ENV_KEY = "OPENAI_API_KEY"
PUBLIC_URL = "https://api.openai.com/v1"
MAX_RETRY_AFTER_S = 120.0  # a Retry-After longer than this is not waited for: the attempt fails instead
CHECK_TIMEOUT_S = 10.0  # the start-up check must answer well before a model would have loaded
_TOKENISH = re.compile(r"(?i)(bearer\s+)\S+|\bsk-[A-Za-z0-9_\-]{6,}")

T = TypeVar("T")
R = TypeVar("R")


def scrub(text: str) -> str:
    """``text`` with ``$OPENAI_API_KEY``, bearer tokens and ``sk-...`` keys replaced by ``***``."""
    text = str(text)
    key = os.environ.get(ENV_KEY)
    if key:
        text = text.replace(key, "***")
    return _TOKENISH.sub(lambda m: (m.group(1) or "") + "***", text)


def resolve_base_url(base_url: str | None = None) -> str | None:
    """The base URL in effect: the argument, else ``$OPENAI_BASE_URL``, else None (the public API)."""
    return base_url or os.environ.get(ENV_URL) or None


def check_config(base_url: str | None = None, what: str = "the openai: judge") -> None:
    """Raise ConfigError when neither a base URL nor ``$OPENAI_API_KEY`` is configured."""
    if not resolve_base_url(base_url) and not os.environ.get(ENV_KEY):
        raise ConfigError(f"{what} needs {ENV_URL} (an OpenAI-compatible server, e.g. http://127.0.0.1:8000/v1) "
                          f"or {ENV_KEY} (the official API); neither is set")


def retry_delay(retry: int, headers: Any, base_delay: float, max_delay: float,
                rng: random.Random | None = None) -> float | None:
    """Seconds to wait before retry number ``retry`` (0-based) after an answer with ``headers``.

    A ``retry-after-ms`` or ``retry-after`` (seconds) header wins; one longer than
    :data:`MAX_RETRY_AFTER_S` gives None (do not retry). Otherwise ``base_delay * 2**retry`` capped at
    ``max_delay``, times a random factor in [0.5, 1] (jitter).
    """
    if headers is not None:
        for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
            value = headers.get(name)
            try:
                wait = float(value) / scale if value is not None else None
            except ValueError:
                wait = None  # an HTTP date: fall back to our own backoff
            if wait is not None and wait >= 0:
                return wait if wait <= MAX_RETRY_AFTER_S else None
    return min(max_delay, base_delay * 2 ** retry) * (0.5 + 0.5 * (rng or random).random())


@dataclass
class CallStats:
    """Counters of one client: HTTP attempts, retries, calls that failed for good, seconds spent."""

    calls: int = 0  # HTTP attempts, retries included
    retries: int = 0
    failures: int = 0  # calls that ended without an answer (retries exhausted or not retryable)
    latency_s: float = 0.0  # wall seconds inside requests, retries and their waits included


@dataclass(frozen=True)
class Completion:
    """The outcome of one chat completion after retries."""

    status: str  # ok | refused (the model declined / content filter) | error (no answer)
    text: str = ""
    detail: str = ""  # why it is not ok (key scrubbed)
    attempts: int = 0
    seconds: float = 0.0


class OpenAIClient:
    """A chat-completions client with counted, jittered retries and a bounded thread pool."""

    def __init__(self, model: str, base_url: str | None = None, timeout: float = 60.0, max_retries: int = 3,
                 base_delay: float = 0.5, max_delay: float = 8.0, max_concurrency: int = 8,
                 what: str = "the openai: judge", stats: Any = None):
        checks = {"timeout": (timeout, timeout > 0, "> 0"), "max_retries": (max_retries, max_retries >= 0, ">= 0"),
                  "base_delay": (base_delay, base_delay >= 0, ">= 0"), "max_delay": (max_delay, max_delay >= 0, ">= 0"),
                  "max_concurrency": (max_concurrency, max_concurrency >= 1, ">= 1")}
        for name, (value, ok, rule) in checks.items():
            if not ok:
                raise ConfigError(f"{what}: {name}={value!r}; allowed: {rule}")
        check_config(base_url, what)
        import openai

        self._openai = openai
        self.model = model
        self.what = what
        self.base_url = resolve_base_url(base_url)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.max_concurrency = int(max_concurrency)
        self.stats = stats if stats is not None else CallStats()  # any object with CallStats' fields
        self._lock = threading.Lock()
        self._rng = random.Random()  # jitter only; never seeds anything global
        self._client = openai.OpenAI(api_key=os.environ.get(ENV_KEY) or "EMPTY", base_url=self.base_url,
                                     timeout=self.timeout, max_retries=0)

    @property
    def url(self) -> str:
        """The endpoint requests go to (never includes the key)."""
        return self.base_url or PUBLIC_URL

    def __repr__(self) -> str:  # never show the SDK client (it holds the key)
        return f"OpenAIClient(model={self.model!r}, base_url={self.base_url!r})"

    def _add(self, **kw: float) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self.stats, k, getattr(self.stats, k) + v)

    def _retryable(self, e: Exception) -> tuple[bool, str]:
        o = self._openai
        if isinstance(e, o.APIStatusError):
            code = e.status_code
            return code in (408, 409, 429) or code >= 500, f"HTTP {code}: {e}"
        if isinstance(e, o.APITimeoutError):
            return True, f"timed out after {self.timeout:g} s"
        if isinstance(e, o.APIConnectionError):
            return True, f"cannot connect to {self.url}: {e}"
        return True, f"{type(e).__name__}: {e}"  # malformed bodies and other API errors

    def complete(self, messages: list[dict], **params: Any) -> Completion:
        """One chat completion of ``messages`` (``params`` go to the API: temperature, max_tokens, seed)."""
        o = self._openai
        t0 = time.perf_counter()
        last, attempts = "", 0
        try:
            for attempt in range(self.max_retries + 1):
                attempts += 1
                self._add(calls=1)
                error: Exception | None = None
                try:
                    resp = self._client.chat.completions.create(model=self.model, messages=messages, **params)
                except o.APIError as e:
                    retry, last = self._retryable(e)
                    if not retry:
                        return self._fail(f"{last} (not retried)", attempts, t0)
                    error = e
                else:
                    choices = getattr(resp, "choices", None) or []
                    if choices:
                        msg = choices[0].message
                        if getattr(msg, "refusal", None) or choices[0].finish_reason == "content_filter":
                            return Completion("refused", msg.content or msg.refusal or "", "the model refused",
                                              attempts, self._done(t0))
                        if msg.content is not None:
                            return Completion("ok", msg.content, "", attempts, self._done(t0))
                    last = "response without text"
                if attempt == self.max_retries:
                    break
                headers = getattr(getattr(error, "response", None), "headers", None)
                wait = retry_delay(attempt, headers, self.base_delay, self.max_delay, self._rng)
                if wait is None:
                    last += f" (Retry-After over {MAX_RETRY_AFTER_S:g} s)"
                    break
                self._add(retries=1)
                time.sleep(wait)
        except Exception as e:  # not an API error: surface it, but never with the key in its text
            self._done(t0)
            raise JudgeError(scrub(f"{self.what} at {self.url}: {type(e).__name__}: {e}")) from None
        return self._fail(f"gave up after {attempts} attempts; last: {last}", attempts, t0)

    def _done(self, t0: float) -> float:
        seconds = time.perf_counter() - t0
        self._add(latency_s=seconds)
        return seconds

    def _fail(self, detail: str, attempts: int, t0: float) -> Completion:
        self._add(failures=1)
        return Completion("error", "", scrub(detail)[:500], attempts, self._done(t0))

    def map(self, fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """``[fn(x) for x in items]`` on at most ``max_concurrency`` threads, results in input order."""
        items = list(items)
        if len(items) <= 1 or self.max_concurrency == 1:
            return [fn(x) for x in items]
        with ThreadPoolExecutor(max_workers=min(self.max_concurrency, len(items))) as pool:
            return list(pool.map(fn, items))

    def check(self, timeout: float = CHECK_TIMEOUT_S) -> None:
        """Fail fast (JudgeError naming the URL, never the key) unless the endpoint answers.

        One ``GET /models`` without retries. A server without that route (HTTP 404) still counts as
        reachable. A served-model list that lacks the model raises only when a 1-token completion
        confirms the model is unknown.
        """
        o = self._openai
        client = self._client.with_options(timeout=min(timeout, self.timeout), max_retries=0)
        where = f"{self.what} at {self.url}"
        try:
            served = [m.id for m in client.models.list()]
        except o.NotFoundError:
            return
        except o.AuthenticationError as e:
            raise JudgeError(scrub(f"{where} rejected the key in {ENV_KEY} (HTTP {e.status_code})")) from None
        except o.APIStatusError as e:
            raise JudgeError(scrub(f"{where} answered HTTP {e.status_code}: {e}")) from None
        except o.APITimeoutError:
            raise JudgeError(f"{where} did not answer within {min(timeout, self.timeout):g} s; "
                             f"check {ENV_URL}") from None
        except o.APIError as e:
            raise JudgeError(scrub(f"{where} is unreachable ({type(e).__name__}: {e}); check {ENV_URL}")) from None
        if served and self.model not in served:
            try:
                client.chat.completions.create(model=self.model, max_tokens=1,
                                               messages=[{"role": "user", "content": "ping"}])
            except o.NotFoundError:
                raise JudgeError(f"{where} does not serve model {self.model!r}; it serves: "
                                 f"{', '.join(served[:20])}") from None
            except o.APIError:
                return  # the model exists; other trouble is retried during the run

    def close(self) -> None:
        """Close the HTTP client."""
        try:
            self._client.close()
        except Exception:  # pragma: no cover - closing is best effort
            pass


def check_reachable(model: str, base_url: str | None = None, timeout: float = CHECK_TIMEOUT_S,
                    what: str = "the openai: judge") -> None:
    """Start-up check: configured (:func:`check_config`) and answering (:meth:`OpenAIClient.check`)."""
    client = OpenAIClient(model, base_url=base_url, timeout=timeout, max_retries=0, what=what)
    try:
        client.check(timeout)
    finally:
        client.close()
