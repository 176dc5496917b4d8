"""The hf: judge on the vLLM engine (the embedded checkpoint as judge shares the session's engine)."""

from __future__ import annotations

A, B = "The lake is frozen.", "The lake is not frozen."


def test_hf_judge_on_vllm_gives_the_hf_verdicts(vllm_chat):
    """Label verdicts, label masses and numeric replies of the hf: judge agree across engines."""
    from emd.judges import NumericQuery, PropositionQuery, get_judge

    queries = [PropositionQuery(A, B, "The lake is frozen solid."),
               PropositionQuery(A, B, "No, the lake has not frozen this winter, the ice never formed at all.")]
    numeric = [NumericQuery(proposition="The lake is <value> metres deep.", response="It is about 40 metres deep.")]
    out = {}
    for engine in ("hf", "vllm"):
        judge = get_judge(f"hf:{vllm_chat.model_dir}", cache=False, threshold=0.0, engine=engine, max_new_tokens=16)
        out[engine] = (judge.judge_propositions(queries), judge.judge_numeric(numeric))
        assert judge.backend.engine == engine
    (hf_p, hf_n), (v_p, v_n) = out["hf"], out["vllm"]
    assert [v.label for v in hf_p] == [v.label for v in v_p] and all(v.state == "scored" for v in v_p)
    assert all(abs(a.confidence - b.confidence) < 1e-3 for a, b in zip(hf_p, v_p))
    assert [v.raw for v in hf_n] == [v.raw for v in v_n]
