"""What every metric means, as data: deltas, reports, sweeps and summaries read this, never the name.

A :class:`MetricSpec` declares one metric (or a family, with ``{placeholder}`` path segments such as
``mask/{config}/honesty``): its kind, its direction and whether comparing two arms of it means
anything. Only ``score`` metrics get ``delta/<metric>/vs_<reference>`` values and paired-bootstrap
CIs; a ``count``, a ``timing`` or a ``cost`` (judge calls, cache hits) never does. Intervals
(``<metric>_ci_low`` / ``_ci_high`` / ``_stderr``) belong to their metric and are never compared on
their own. The definitions themselves are in ``docs/metrics.md``.

Modules that produce metrics declare them with :func:`declare` at import; :func:`lookup` imports the
declaring modules lazily (all of them are light: no torch, no mlflow).
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Iterable, Mapping

KINDS = ("score", "count", "timing", "cost", "info")
INTERVAL_SUFFIXES = ("_ci_low", "_ci_high", "_stderr")

# Modules whose import declares metrics (kept light so that looking a metric up stays cheap).
DECLARING_MODULES = ("emd.eval.benchmarks", "emd.experiment", "emd.interaction.metrics", "emd.sweep.outcome",
                     "emd.grid_collect")
# A run logs its references' metrics under these prefixes (``control/mask/honesty``; a sweep's parent
# logs whichever reference it compared with as ``reference/...``): same meaning, never compared again.
REFERENCE_PREFIXES = ("vanilla/", "control/", "reference/")


@dataclass(frozen=True)
class MetricSpec:
    """One metric (or family of metrics) and its meaning."""

    pattern: str  # "mask/honesty", "mask/{config}/honesty", "cap/{task}/{metric}"
    kind: str  # score | count | timing | cost | info
    higher_is_better: bool | None = None  # None: no direction (counts, timings) or unknown (lm-eval)
    unit: str = ""  # "0-100", "%", "nats", "s", "items" ...
    doc: str = ""  # one line; docs/metrics.md has the full definition
    per_item: bool = False  # per-item scores exist, so deltas get paired-bootstrap CIs

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"MetricSpec {self.pattern!r}: kind={self.kind!r}; allowed: {', '.join(KINDS)}")

    @property
    def gets_delta(self) -> bool:
        """Whether ``delta/<metric>/vs_<ref>`` is meaningful (outcomes only, never bookkeeping)."""
        return self.kind == "score"

    def regex(self) -> re.Pattern:
        """The compiled name pattern (each placeholder matches one path segment)."""
        parts = re.split(r"(\{[a-z_]+\})", self.pattern)
        return re.compile("^" + "".join("[^/]+" if p.startswith("{") else re.escape(p) for p in parts if p) + "$")


_SPECS: dict[str, MetricSpec] = {}
_COMPILED: list[tuple[re.Pattern, MetricSpec]] = []
_LOADED = False


def declare(*specs: MetricSpec) -> tuple[MetricSpec, ...]:
    """Register metric declarations (idempotent for identical re-declarations); returns them."""
    for s in specs:
        old = _SPECS.get(s.pattern)
        if old is not None and old != s:
            raise ValueError(f"metric {s.pattern!r} declared twice with different meanings: {old} vs {s}")
        if old is None:
            _SPECS[s.pattern] = s
            # exact names before families, so "mask/honesty_logprob" never falls into "mask/{config}/..."
            _COMPILED.append((s.regex(), s))
            _COMPILED.sort(key=lambda t: ("{" in t[1].pattern, -len(t[1].pattern)))
    return specs


def _load() -> None:
    global _LOADED
    if not _LOADED:
        _LOADED = True
        for mod in DECLARING_MODULES:
            importlib.import_module(mod)


def split_interval(name: str) -> tuple[str, str]:
    """``mask/honesty_ci_low`` -> (``mask/honesty``, ``_ci_low``); other names -> (name, "")."""
    for suf in INTERVAL_SUFFIXES:
        if name.endswith(suf):
            return name[: -len(suf)], suf
    return name, ""


def lookup(name: str) -> MetricSpec | None:
    """The declaration a metric name falls under (None: undeclared). Intervals resolve to their metric's."""
    _load()
    base, _ = split_interval(name)
    if base.startswith("delta/"):
        return None
    for pre in REFERENCE_PREFIXES:
        if base.startswith(pre):
            base = base[len(pre):]
            break
    for rx, spec in _COMPILED:
        if rx.match(base):
            return spec
    return None


def require(name: str) -> MetricSpec:
    """:func:`lookup`, but an undeclared name is an error naming the allowed families."""
    spec = lookup(name)
    if spec is None:
        raise KeyError(f"metric {name!r} is not declared; declared: {', '.join(sorted(_SPECS))}")
    return spec


def is_interval(name: str) -> bool:
    """True for ``_ci_low`` / ``_ci_high`` / ``_stderr`` companions."""
    return bool(split_interval(name)[1])


def comparable(names: Iterable[str]) -> list[str]:
    """The names among ``names`` that get deltas: declared ``score`` metrics, not their intervals."""
    out = []
    for n in names:
        if is_interval(n) or n.startswith(REFERENCE_PREFIXES):
            continue
        spec = lookup(n)
        if spec is not None and spec.gets_delta:
            out.append(n)
    return out


def undeclared(names: Iterable[str]) -> list[str]:
    """Names no declaration covers (a test keeps this empty for every metric a run logs)."""
    return [n for n in names if not n.startswith("delta/") and lookup(n) is None]


def declared() -> Mapping[str, MetricSpec]:
    """Every declaration, by pattern."""
    _load()
    return dict(_SPECS)
