"""hf and vLLM engines on the embedded model: same greedy tokens, same log-probabilities, base and adapters."""

from __future__ import annotations

import contextlib

import pytest

PROMPTS = ["What is 2+2?", "Name a colour.", "Is the sky green? Answer yes or no.", "Is it safe to eat raw chicken?"]
CONVS = [[{"role": "user", "content": p}] for p in PROMPTS]
OPTIONS = [["Yes", "No", "The answer is"]] * len(CONVS)
LOGPROB_TOL = 2e-3  # nats; fp32 on both engines, different kernels (measured max ~1e-4)


@contextlib.contextmanager
def _vllm_scores_adapters(chat):
    """vLLM scores with the adapter too (the GPU setting; on CPU adapter scoring stays with transformers)."""
    before, chat.engine.scores_adapters = chat.engine.scores_adapters, True
    try:
        yield chat
    finally:
        chat.engine.scores_adapters = before


@contextlib.contextmanager
def _hf(chat):
    """The same ChatModel served by transformers for the duration."""
    engine, chat.engine = chat.engine, None
    try:
        yield chat
    finally:
        chat.engine = engine


def _ids(chat, texts):
    return [chat.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]


@pytest.mark.parametrize("which", [None, 0])
def test_greedy_tokens_and_logprobs_match(vllm_chat, adapters, which):
    """Greedy replies are token-identical and option log-probs agree within LOGPROB_TOL (base, adapter)."""
    chat = vllm_chat
    path = None if which is None else adapters[which]
    with chat.adapter(path), _vllm_scores_adapters(chat):
        assert chat.engine_name == "vllm"
        fast = chat.generate_detailed(CONVS, max_new_tokens=12)
        fast_lp = chat.option_logprobs(CONVS, OPTIONS, end_of_turn=True)
        with _hf(chat):
            assert chat.engine_name == "hf"
            ref = chat.generate_detailed(CONVS, max_new_tokens=12, batch_size=4)
            ref_lp = chat.option_logprobs(CONVS, OPTIONS, end_of_turn=True)
    same = sum(a == b for a, b in zip(_ids(chat, fast.texts), _ids(chat, ref.texts)))
    print(f"adapter={path}: {same}/{len(CONVS)} greedy replies token-identical")
    assert same == len(CONVS), list(zip(fast.texts, ref.texts))
    assert fast.truncated == ref.truncated
    diff = max(abs(a - b) for ra, rb in zip(fast_lp, ref_lp) for a, b in zip(ra, rb))
    print(f"adapter={path}: max |log-prob difference| {diff:.2e} nats")
    assert diff < LOGPROB_TOL


def test_one_engine_serves_base_and_two_adapters(vllm_chat, adapters):
    """Base, adapter one and adapter two, interleaved, from one engine: each reply equals its hf reference
    and the three score differently, so the adapter really travels per request (no base reload, no stale
    adapter)."""
    chat = vllm_chat
    engine = chat.engine
    got, ref, scores = {}, {}, {}
    for name in (None, 0, 1, None, 1):
        path = None if name is None else adapters[name]
        with chat.adapter(path), _vllm_scores_adapters(chat):
            got.setdefault(name, []).append(chat.generate(CONVS[1:3], max_new_tokens=8))
            scores.setdefault(name, chat.option_logprobs(CONVS[1:3], [["Yes", "No"]] * 2))
            if name not in ref:
                with _hf(chat):
                    ref[name] = chat.generate(CONVS[1:3], max_new_tokens=8)
    assert chat.engine is engine
    for name, runs in got.items():
        assert all(r == ref[name] for r in runs), (name, runs, ref[name])
    # short greedy replies may coincide; the log-probs of three different weight sets cannot
    assert scores[None] != scores[0] != scores[1] != scores[None]


def test_scoring_many_requests_with_lora(vllm_chat, adapters):
    """Many prompts and multi-token options scored at once with an adapter (vLLM's prompt-logprob path
    crashed here with LoRA enabled): finite, and the same as scoring each prompt alone."""
    chat = vllm_chat
    convs = CONVS * 2
    opts = [["Yes, certainly", "No"]] * len(convs)
    with chat.adapter(adapters[1]), _vllm_scores_adapters(chat):
        together = chat.option_logprobs(convs, opts)
        alone = [chat.option_logprobs([c], [o])[0] for c, o in zip(convs[:2], opts[:2])]
    assert all(x == x and x < 0 for row in together for x in row)
    for a, b in zip(together[:2], alone):
        assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4


def test_sampling_is_seeded_per_request(vllm_chat):
    """Sampled replies repeat with the same seed, change with another, and do not depend on batch mates."""
    chat = vllm_chat
    a = chat.generate(CONVS[:3], max_new_tokens=8, temperature=1.0, seed=7)
    b = chat.generate(CONVS[:3], max_new_tokens=8, temperature=1.0, seed=7)
    c = chat.generate(CONVS[:3], max_new_tokens=8, temperature=1.0, seed=8)
    alone = chat.generate(CONVS[1:2], max_new_tokens=8, temperature=1.0, seed=9)  # = request 1 of c (seed 8 + 1)
    assert a == b and a != c and alone[0] == c[1]
