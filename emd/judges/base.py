"""The judge role: typed queries in, typed verdicts out.

A judge is configured apart from the model under test and is named by a ``provider:model`` URI
(``embed:minilm``, ``openai:gpt-4o-mini``, ``hf:/path/to/model``). Every backend answers the same
three kinds of question that MASK and DeceptionBench need, and each answer is a :class:`Verdict`
whose ``state`` says whether it was actually scored. Callers must count ``unparsed``/``refused``/
``error`` verdicts as their own state and never fold them into an answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, Sequence, runtime_checkable

VerdictState = Literal["scored", "unparsed", "refused", "error"]
VERDICT_STATES: tuple[str, ...] = ("scored", "unparsed", "refused", "error")
# Which instructions a MASK proposition query is judged under: a direct belief answer
# (belief_elicit_1), a consistency answer (belief_elicit_2/3), a pressured answer, or the pressured
# answer of a doubling_down row (judged with the forced first exchange).
QUERY_SLOTS: tuple[str, ...] = ("direct", "consistency", "pressured", "doubling_down")


@dataclass(frozen=True)
class PropositionQuery:
    """Which side of a binary proposition does ``response`` assert?

    Labels: A (asserts ``statement_a``), B (asserts ``statement_b``), C (evades, refuses, hedges),
    D (denies both).
    """

    statement_a: str  # the proposition with the first pivotal option filled in
    statement_b: str  # ... with the second pivotal option
    response: str  # the model's answer being judged
    question: str = ""  # the user prompt the response answers (context for API judges)
    # What the upstream MASK judge sees besides the response (docs/judge_protocol.md):
    slot: str = "pressured"  # one of QUERY_SLOTS: which instructions apply
    config: str = ""  # MASK config, for per-config rules (disinformation, continuations)
    system_prompt: str = ""  # the system prompt the response was written under
    dd_turn_1_prompt: str = ""  # doubling_down: the first user turn ...
    dd_turn_1_response: str = ""  # ... and the forced assistant answer the response follows


@dataclass(frozen=True)
class NumericQuery:
    """What numeric value (as a lower/upper bound pair) does ``response`` assert for ``proposition``?"""

    proposition: str  # e.g. "The unemployment rate in 2020 was <value> percent."
    response: str  # the answer judged; for a joint belief query, all answers joined
    question: str = ""
    slot: str = "pressured"  # "pressured", or "belief" for the belief answers judged together
    config: str = ""
    system_prompt: str = ""
    belief_answers: tuple[tuple[str, str], ...] = ()  # belief slot: (prompt, answer) pairs judged together


@dataclass(frozen=True)
class ConsistencyQuery:
    """Is ``text`` consistent with the reference view ``view``? Labels: ``yes`` / ``no``.

    DeceptionBench asks it twice per item: does the reasoning reflect the model's own view, and is
    the final output consistent with it.
    """

    view: str  # the model's own view U (step 1 answer)
    text: str  # the reasoning R or the final output Y
    aspect: Literal["reasoning", "output"] = "output"
    question: str = ""
    scenario: str = ""  # what the model was put under: the outer system prompt and outer prompt
    view_prompt: str = ""  # the neutral question whose answer is the view


@dataclass(frozen=True)
class Verdict:
    """One judge answer.

    ``label`` is set only when ``state == "scored"`` for categorical queries (A/B/C/D or yes/no);
    ``lower``/``upper`` are set for numeric queries (either may be None for an open bound; both None
    with state scored means the response commits to no value).
    """

    state: VerdictState
    label: str | None = None
    lower: float | None = None
    upper: float | None = None
    rel_lower: float | None = None  # numeric: relative (percentage-change) bounds, where the judge gives them
    rel_upper: float | None = None
    raw: str = ""  # the judge's raw answer text, for the per-item table
    detail: str = ""  # why it is not scored, or backend notes
    confidence: float | None = None  # backend-specific score in [0, 1] where available

    @property
    def scored(self) -> bool:
        """True when the judge produced a usable answer."""
        return self.state == "scored"


@runtime_checkable
class Judge(Protocol):
    """What every judge backend provides. Batched: one call per list of queries."""

    id: str  # the full URI, e.g. "embed:minilm"; part of the cache key and logged
    version: str  # prompt-template / rule version, logged with every evaluation

    def judge_propositions(self, queries: Sequence[PropositionQuery]) -> list[Verdict]:
        """Label each response A/B/C/D."""
        ...

    def judge_numeric(self, queries: Sequence[NumericQuery]) -> list[Verdict]:
        """Extract the asserted numeric bounds of each response."""
        ...

    def judge_consistency(self, queries: Sequence[ConsistencyQuery]) -> list[Verdict]:
        """Label each text yes/no for consistency with its view."""
        ...


@dataclass
class JudgeStats:
    """Counters a judge keeps so callers can log cache hits, real calls, failures and latency.

    ``latency_s`` and ``failures`` are what entries log as ``judge/latency_s`` and ``judge/failures``.
    """

    calls: int = 0  # backend calls actually made (0 on a fully cached rerun)
    cache_hits: int = 0
    retries: int = 0
    failures: int = 0  # calls that ended without a verdict (retries exhausted, non-retryable errors)
    # Seconds the backend spent answering: summed per request for API judges (each request with its
    # retries and waits), wall time of the batched calls for local judges.
    latency_s: float = 0.0
    by_state: dict[str, int] = field(default_factory=dict)

    @property
    def mean_latency_s(self) -> float:
        """Mean seconds per answered query (0 when nothing was sent)."""
        return self.latency_s / self.calls if self.calls else 0.0

    def metrics(self) -> dict[str, float]:
        """The ``judge/*`` run metrics of these counters (``judge/latency_s`` is the per-query mean)."""
        return {"judge/calls": float(self.calls), "judge/cache_hits": float(self.cache_hits),
                "judge/failures": float(self.failures), "judge/latency_s": round(self.mean_latency_s, 4)}

    def reset(self) -> None:
        """Zero every counter in place (the object may be shared with a client that updates it)."""
        self.calls = self.cache_hits = self.retries = self.failures = 0
        self.latency_s = 0.0
        self.by_state = {}
