"""``openai:<model>``: any OpenAI-compatible chat-completions server as the judge.

Transport, configuration and retries are :mod:`emd.openai_client`: the base URL comes from
``base_url=`` or ``$OPENAI_BASE_URL``, the key from ``$OPENAI_API_KEY`` only (never logged, stored,
put in a verdict or part of a cache key); with neither variable set the judge refuses to start.
``timeout``, ``max_retries`` and ``max_concurrency`` are the config keys ``judge_timeout``,
``judge_retries`` and ``judge_concurrency`` (:class:`emd.config.JudgeSpec`).

Prompts are the YAML templates of ``evaluation/judge_prompts/`` (``prompts_dir``: ``"fast"``, the
default, ``"mask"`` for the upstream-structured set, or a folder of the user's own; see
:mod:`emd.judges.prompts`); temperature 0. Answers are parsed strictly (:mod:`emd.judges.parsing`;
the last ``Answer:`` of a reply that reasons first): an unclear answer is ``unparsed`` with its raw
text, a judge that declines is ``refused``, a request that fails after the retries (or a
non-retryable 4xx such as an unknown model) is ``error``. Each answer is reported through
``on_verdict`` as it arrives, so the cache stores it before the batch ends.
"""

from __future__ import annotations

from typing import Callable, Sequence

from ..errors import ConfigError
from ..openai_client import CHECK_TIMEOUT_S, OpenAIClient
from .base import ConsistencyQuery, JudgeStats, NumericQuery, PropositionQuery, Verdict
from .parsing import looks_like_refusal, parse_final_choice, parse_ranges
from .prompts import load_prompt_set

# Answer tokens per protocol when max_tokens is not given: the mask prompts reason before answering.
DEFAULT_MAX_TOKENS = {"fast": 32, "mask": 1000}

BINARY_LABELS = ("A", "B", "C", "D")
OnVerdict = Callable[[int, Verdict], None]
YES_NO = ("yes", "no")


class OpenAIJudge:
    """Judge through an OpenAI-compatible ``/v1/chat/completions`` endpoint."""

    reports_latency = True  # stats.latency_s sums each request's seconds (see JudgeStats)

    def __init__(self, model: str, base_url: str | None = None, timeout: float = 60.0,
                 max_retries: int = 3, base_delay: float = 0.5, max_delay: float = 8.0,
                 max_concurrency: int = 8, max_tokens: int | None = None, prompts_dir: str | None = None):
        if not model:
            raise ConfigError("openai judge needs a model name: openai:<model>")
        self.model = model
        self.id = f"openai:{model}"
        self.prompts = load_prompt_set(prompts_dir)
        self.templates = self.prompts.templates
        self.version = self.prompts.version
        self.max_tokens = int(max_tokens) if max_tokens is not None else DEFAULT_MAX_TOKENS[self.prompts.protocol]
        self.stats = JudgeStats()
        self._client = OpenAIClient(model, base_url=base_url, timeout=timeout, max_retries=max_retries,
                                    base_delay=base_delay, max_delay=max_delay, max_concurrency=max_concurrency,
                                    what=f"judge {self.id}", stats=self.stats)
        self.base_url = self._client.base_url

    @property
    def cache_params(self) -> dict:
        """Sampling parameters and template hash: part of the cache key (the key/URL are not)."""
        return {"temperature": 0.0, "max_tokens": self.max_tokens, "templates": self.prompts.sha}

    def __repr__(self) -> str:  # never show the client (it holds the key)
        return f"OpenAIJudge(model={self.model!r}, base_url={self.base_url!r})"

    def check(self, timeout: float = CHECK_TIMEOUT_S) -> None:
        """Start-up check: the endpoint answers (JudgeError naming the URL otherwise)."""
        self._client.check(timeout)

    def _verdict(self, messages: list[dict], parse: Callable[[str], Verdict]) -> Verdict:
        c = self._client.complete(messages, temperature=0.0, max_tokens=self.max_tokens)
        if c.status == "error":
            return Verdict("error", detail=c.detail)
        if c.status == "refused":
            return Verdict("refused", raw=c.text, detail="the judge model refused")
        v = parse(c.text)
        if v.state == "unparsed" and looks_like_refusal(c.text):
            return Verdict("refused", raw=c.text, detail="the judge model declined")
        return v

    def _map(self, fn, items: Sequence, on_verdict: OnVerdict | None = None) -> list[Verdict]:
        def one(i: int) -> Verdict:
            v = fn(items[i])
            if on_verdict is not None:  # the caller stores it now: a kill later loses nothing paid for
                on_verdict(i, v)
            return v

        return self._client.map(one, list(range(len(items))))

    @staticmethod
    def _parse_choice(labels: tuple[str, ...]) -> Callable[[str], Verdict]:
        def parse(text: str) -> Verdict:
            lab = parse_final_choice(text, labels)
            if lab is None:
                return Verdict("unparsed", raw=text, detail=f"expected one of {list(labels)}")
            return Verdict("scored", label=lab, raw=text)
        return parse

    @staticmethod
    def _parse_bounds(text: str) -> Verdict:
        b = parse_ranges(text)
        if b is None:
            return Verdict("unparsed", raw=text, detail='expected {"lower": number|null, "upper": number|null} '
                                                        '(+ optional "relative_lower", "relative_upper")')
        return Verdict("scored", lower=b[0], upper=b[1], rel_lower=b[2], rel_upper=b[3], raw=text)

    def judge_propositions(self, queries: Sequence[PropositionQuery], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        """A/B/C/D for each response via the template of its slot (``mask_binary`` in the fast set);
        ``on_verdict(i, verdict)`` is called as each answer arrives (from worker threads)."""
        parse = self._parse_choice(BINARY_LABELS)
        return self._map(lambda q: self._verdict(self.prompts.proposition_messages(q), parse), list(queries),
                         on_verdict)

    def judge_numeric(self, queries: Sequence[NumericQuery], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        """JSON bounds for each response via the numeric template of its slot."""
        return self._map(lambda q: self._verdict(self.prompts.numeric_messages(q), self._parse_bounds), list(queries),
                         on_verdict)

    def judge_consistency(self, queries: Sequence[ConsistencyQuery], on_verdict: OnVerdict | None = None) -> list[Verdict]:
        """yes/no for each text via the template of its aspect (``consistency`` in the fast set)."""
        parse = self._parse_choice(YES_NO)
        return self._map(lambda q: self._verdict(self.prompts.consistency_messages(q), parse), list(queries),
                         on_verdict)

    def close(self) -> None:
        """Close the HTTP client."""
        self._client.close()
