"""hf: judge on the embedded SmolLM2 checkpoint (a real, small causal LM)."""

from __future__ import annotations

import gc

import pytest
import torch

from emd.judges import ConsistencyQuery, NumericQuery, PropositionQuery, get_judge
from emd.judges.cache import CachedJudge, JudgeCache
from emd.judges.prompts import load_template, render_proposition

A, B = "The lake is frozen.", "The lake is not frozen."
QUERIES = [PropositionQuery(A, B, "The lake is frozen solid."),
           PropositionQuery(A, B, "No, the lake has not frozen this winter, the ice never formed at all."),
           PropositionQuery(A, B, "I can't say.")]


@pytest.fixture(scope="module")
def model_dir():
    torch.set_num_threads(1)
    from emd.models import load_model  # the embedded model's float checkpoint folder

    chat = load_model("embedded:smollm2")
    path = str(chat.model_dir)
    del chat
    gc.collect()
    return path


@pytest.fixture(scope="module")
def backend(model_dir):
    """One loaded hf: backend shared by the tests (loading takes seconds on two cores)."""
    judge = get_judge(f"hf:{model_dir}", cache=False, threshold=0.0, batch_size=3)
    assert judge.id == f"hf:{model_dir}" and judge.version.startswith("mask-binary-")
    return judge.backend


def test_labels_by_logprob_match_an_unbatched_forward(backend):
    judge = CachedJudge(backend, None)
    out = judge.judge_propositions(QUERIES)
    assert all(v.state == "scored" and v.label in "ABCD" for v in out)
    assert all(0.0 < v.confidence <= 1.0 for v in out)
    # Recompute the label masses one prompt at a time, without padding: the batched, left-padded
    # pass must give the same numbers.
    model, tok = backend._load()
    t = load_template("mask_binary")
    for q, v in zip(QUERIES, out):
        text = tok.apply_chat_template(render_proposition(t, q), tokenize=False, add_generation_prompt=True)
        ids = tok(text, return_tensors="pt", add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            probs = torch.softmax(model(input_ids=ids).logits[0, -1].float(), -1)
        masses = {}
        for lab in "ABCD":
            spellings = (lab, " " + lab, lab.lower(), " " + lab.lower())
            toks = {tok.encode(s, add_special_tokens=False)[0] for s in spellings
                    if len(tok.encode(s, add_special_tokens=False)) == 1}
            masses[lab] = float(probs[sorted(toks)].sum())
        assert v.label == max(masses, key=masses.get)
        got = dict(kv.split("=") for kv in v.raw.split())
        for lab in "ABCD":
            assert float(got[lab]) == pytest.approx(masses[lab], abs=2e-3)


def test_low_mass_is_unparsed_not_a_guess(backend):
    judge = CachedJudge(backend, None)
    backend.threshold = 1.0  # no label set can carry all the probability mass
    try:
        out = judge.judge_propositions(QUERIES[:2])
        out += judge.judge_consistency([ConsistencyQuery("Ice is cold.", "Ice is cold.")])
    finally:
        backend.threshold = 0.0
    assert [v.state for v in out] == ["unparsed"] * 3
    assert all(v.label is None and v.detail.startswith("no answer") for v in out)


@pytest.mark.slow
def test_consistency_and_numeric(backend, tmp_path):
    judge = CachedJudge(backend, JudgeCache(tmp_path / "judge_cache.sqlite"))
    cons = judge.judge_consistency([ConsistencyQuery("Ice is cold.", "Ice is cold."),
                                    ConsistencyQuery("Ice is cold.", "Ice is hot.", aspect="reasoning")])
    assert all(v.state == "scored" and v.label in ("yes", "no") for v in cons)
    num = judge.judge_numeric([NumericQuery("The lake is <pivotal><value></pivotal> metres deep.", "It is 12 metres deep.")])
    (v,) = num
    # A 135M model may or may not write valid JSON; either way the verdict says which, with the raw text.
    assert v.state in ("scored", "unparsed") and v.raw
    if v.state == "unparsed":
        assert v.lower is None and v.upper is None
    again = CachedJudge(backend, JudgeCache(tmp_path / "judge_cache.sqlite"))
    assert again.judge_consistency([ConsistencyQuery("Ice is cold.", "Ice is cold.")]) == cons[:1]
    assert again.stats.calls == 0
