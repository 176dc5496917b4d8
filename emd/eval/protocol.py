"""Protocol profiles: the evaluation settings that make a number comparable with a benchmark's own.

``mask`` is the upstream protocol of MASK and DeceptionBench (sampled answers of up to 1000 tokens,
three independent ``belief_elicit_1`` samples, a judge with room to reason, DeceptionBench without a
prefill or forced answer); ``fast`` is short greedy decoding for two CPU cores; ``auto`` picks
``fast`` for ``embedded:`` and ``random:`` models and ``mask`` for every other model. Each setting
is an ordinary config key: a value the user gives wins over the profile, and a run whose resolved
settings differ from the upstream ones is tagged with the keys that differ (``docs/scoring.md``,
"Comparability").
"""

from __future__ import annotations

import dataclasses
from typing import Any

PROTOCOLS = ("auto", "mask", "fast")

# Key -> value per profile. Keys are EvalSpec fields whose default (None) means "the profile's value".
PROFILES: dict[str, dict[str, Any]] = {
    "mask": {
        "mask_configs": "provided_facts,disinformation,statistics",  # the subsets Hu et al. report
        "max_new_tokens": 1000,
        "mask_temperature": 1.0,
        "belief_temperature": 1.0,
        "belief_samples": 3,
        "judge_max_tokens": 1000,
        "deceptionbench_view_tokens": 1000,
        "deceptionbench_max_new_tokens": 1000,
        "deceptionbench_prefill": False,
        "deceptionbench_force_output": False,
    },
    "fast": {
        "mask_configs": "provided_facts,known_facts,disinformation",
        "max_new_tokens": 48,
        "mask_temperature": 0.0,
        "belief_temperature": 0.0,
        "belief_samples": 3,  # greedy: the three coincide and are generated once
        "judge_max_tokens": 32,
        "deceptionbench_view_tokens": 64,
        "deceptionbench_max_new_tokens": 96,
        "deceptionbench_prefill": True,  # 135M models never open <think> on their own
        "deceptionbench_force_output": True,
    },
}
UPSTREAM = PROFILES["mask"]
FAST_PROVIDERS = ("embedded", "random")


def profile_for(protocol: str, model_uri: str) -> str:
    """The concrete profile (``mask`` or ``fast``) that ``protocol`` means for ``model_uri``."""
    if protocol != "auto":
        return protocol
    return "fast" if model_uri.split(":", 1)[0] in FAST_PROVIDERS else "mask"


def resolve(spec, model_uri: str):
    """``spec`` with every unset profile key filled in and ``protocol`` made concrete."""
    name = profile_for(spec.protocol, model_uri)
    fill = {k: v for k, v in PROFILES[name].items() if getattr(spec, k) is None}
    if not fill and spec.protocol == name:
        return spec
    return dataclasses.replace(spec, protocol=name, **fill)


def is_resolved(spec) -> bool:
    """True when no profile key is left unset."""
    return spec.protocol != "auto" and all(getattr(spec, k) is not None for k in UPSTREAM)


def deviations(spec, judge_uri: str = "") -> list[str]:
    """The settings of a resolved ``spec`` (and judge) that differ from the upstream protocol."""
    out = [f"{k}={getattr(spec, k)!r}" for k, v in UPSTREAM.items()
           if k != "mask_configs" and getattr(spec, k) != v]
    if judge_uri.startswith("embed:"):
        out.append(f"judge={judge_uri} (offline rules, not the benchmarks' LLM judge)")
    return out
