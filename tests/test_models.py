"""Model backends: the cached float conversion equals the GGUF, local hf: paths load, batching is exact."""

import json

import pytest
import torch

from emd.errors import ModelError
from emd.models import embedded_gguf_path, load_model, parse_model_uri, resolve_model_dir

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}


@pytest.mark.slow
def test_conversion_logits_equal_gguf(embedded_model):
    from transformers import AutoModelForCausalLM

    gguf = embedded_gguf_path()
    ref = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    ids = embedded_model.tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        a = ref(ids).logits
        b = embedded_model.model(ids).logits
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    cfg = json.loads((embedded_model.model_dir / "config.json").read_text())
    assert "quantization_config" not in cfg  # else the reload is 'quantized' and unsaveable
    assert embedded_model.info["n_params"] > 100_000_000


def test_second_resolve_reuses_conversion(embedded_model):
    d = resolve_model_dir("embedded:smollm2")
    assert d == embedded_model.model_dir and (d / "emd_conversion.json").is_file()


@pytest.mark.slow
def test_hf_local_path_loads_with_template(embedded_model):
    m = load_model(f"hf:{embedded_model.model_dir}")
    assert m.tokenizer.chat_template
    assert m.chat_template_hash == embedded_model.chat_template_hash
    out = m.generate([[SYSTEM, {"role": "user", "content": "Name a colour."}]], max_new_tokens=8)
    assert isinstance(out[0], str) and out[0]


@pytest.mark.slow
def test_batched_generation_equals_one_at_a_time(embedded_model):
    convs = [[SYSTEM, {"role": "user", "content": q}] for q in
             ["What is 2+2?", "Name the largest ocean on Earth, please, in one word.", "Say hello."]]
    batched = embedded_model.generate(convs, max_new_tokens=12, batch_size=3)
    single = [embedded_model.generate([c], max_new_tokens=12, batch_size=1)[0] for c in convs]
    assert batched == single


def test_option_logprobs_prefers_the_right_answer(embedded_model):
    conv = [SYSTEM, {"role": "user", "content": "What is the capital of France? Answer with one word."}]
    (lp,) = embedded_model.option_logprobs([conv], [["Paris", "Banana"]])
    assert lp[0] > lp[1]
    # scoring is deterministic and independent of batch composition
    again = embedded_model.option_logprobs([conv, conv], [["Paris", "Banana"], ["Paris"]], batch_size=1)
    assert abs(again[0][0] - lp[0]) < 1e-4 and abs(again[1][0] - lp[0]) < 1e-4


def test_option_logprobs_equal_a_plain_forward_pass(embedded_model):
    """Shared single-token rows, multi-token rows, left padding and trimmed logits change nothing:
    every option's score equals the sum read off one unpadded forward pass of prompt + option."""
    import torch

    tok, model = embedded_model.tokenizer, embedded_model.model
    convs = [[SYSTEM, {"role": "user", "content": "Is the sky green? Answer A or B.\nA) yes\nB) no"}],
             [{"role": "user", "content": "Name a fruit."}]]
    options = [["A", "B", "Neither of them"], ["An apple", "B"]]
    got = embedded_model.option_logprobs(convs, options, batch_size=2)
    for conv, opts, scores in zip(convs, options, got):
        prompt = tok(embedded_model.render(conv), add_special_tokens=False)["input_ids"]
        for opt, score in zip(opts, scores):
            opt_ids = tok(opt, add_special_tokens=False)["input_ids"]
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([prompt + opt_ids])).logits[0].float()
            logp = torch.log_softmax(logits, -1)
            want = sum(float(logp[len(prompt) - 1 + k, t]) for k, t in enumerate(opt_ids))
            assert abs(score - want) < 1e-3, (opt, score, want)


@pytest.mark.parametrize("uri,match", [("hf", "not a model URI"), ("foo:bar", "unknown model URI"),
                                       ("embedded:gpt2", "embedded:smollm2"), ("random:7b", "random:tiny")])
def test_bad_uris(uri, match):
    with pytest.raises(ModelError, match=match):
        parse_model_uri(uri)


def test_hf_folder_without_config(tmp_path):
    from emd.models import validate_model_uri

    with pytest.raises(ModelError, match="no config.json"):
        validate_model_uri(f"hf:{tmp_path}")


def test_random_model_builds_and_generates():
    m = load_model("random:tiny")
    assert m.info["n_params"] < 20_000_000
    out = m.generate([[{"role": "user", "content": "hi"}]], max_new_tokens=4)
    assert isinstance(out[0], str)
