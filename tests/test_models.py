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


# ---------------------------------------------------------------- model and adapter checks (no weights read)
def _folder(tmp_path, name, files):
    d = tmp_path / name
    d.mkdir()
    for f, text in files.items():
        (d / f).write_text(text)
    return d


def test_hf_folder_checks_name_the_file_or_the_missing_piece(tmp_path, embedded_model):
    from emd.models import validate_model_uri

    garbage = _folder(tmp_path, "garbage", {"config.json": "{this is not json"})
    with pytest.raises(ModelError, match=r"garbage/config.json is not valid JSON \(.* line 1"):
        validate_model_uri(f"hf:{garbage}")
    listed = _folder(tmp_path, "listed", {"config.json": "[1, 2]"})
    with pytest.raises(ModelError, match="JSON list; expected an object"):
        validate_model_uri(f"hf:{listed}")
    bare = _folder(tmp_path, "bare", {"config.json": json.dumps({"model_type": "llama"})})
    with pytest.raises(ModelError, match=r"incomplete: missing tokenizer files .*; weights"):
        validate_model_uri(f"hf:{bare}")
    (bare / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelError, match="missing weights") as e:
        validate_model_uri(f"hf:{bare}")
    assert "tokenizer" not in str(e.value)
    (bare / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "model-1.safetensors"}}))
    with pytest.raises(ModelError, match="weight shards named in model.safetensors.index.json: model-1.safetensors"):
        validate_model_uri(f"hf:{bare}")
    validate_model_uri(f"hf:{embedded_model.model_dir}")  # a real folder passes


def test_hub_id_not_cached_while_offline_names_the_id(monkeypatch):
    from emd.models import validate_model_uri

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="hf:nobody-xyz/no-such-model is not a local folder and not in the local"):
        validate_model_uri("hf:nobody-xyz/no-such-model")


def test_load_model_checks_before_loading(tmp_path):
    bare = _folder(tmp_path, "bare", {"config.json": json.dumps({"model_type": "llama"})})
    with pytest.raises(ModelError, match="missing tokenizer files"):
        load_model(f"hf:{bare}")


@pytest.mark.parametrize("field,value,allowed", [
    ("r", "8", "an integer > 0"), ("r", 0, "an integer > 0"), ("r", True, "an integer > 0"),
    ("lora_alpha", "16", "a number"), ("target_modules", 3, "a non-empty list of module names"),
    ("target_modules", ["q_proj", 1], "a non-empty list of module names"), ("base_model_name_or_path", 5, "a string")])
def test_adapter_config_field_types(tmp_path, field, value, allowed):
    from emd.models import validate_adapter_dir

    cfg = {"r": 8, "lora_alpha": 16, "target_modules": ["q_proj"], "base_model_name_or_path": "x"}
    d = _folder(tmp_path, "a", {"adapter_config.json": json.dumps({**cfg, field: value}),
                                "adapter_model.safetensors": ""})
    with pytest.raises(ModelError, match=f"field '{field}' is .*allowed: {allowed}"):
        validate_adapter_dir(d)
    (d / "adapter_config.json").write_text(json.dumps(cfg))
    assert validate_adapter_dir(d)["r"] == 8
    (d / "adapter_model.safetensors").unlink()
    with pytest.raises(ModelError, match="has no weights"):
        validate_adapter_dir(d)
    (d / "adapter_config.json").write_text("{oops")
    with pytest.raises(ModelError, match="adapter_config.json is not valid JSON"):
        validate_adapter_dir(d)


def test_cli_bad_model_exits_2_before_any_run(tmp_path, tracking_uri, isolated_cache, capsys):
    from mlflow.tracking import MlflowClient

    from emd.cli import main

    garbage = _folder(tmp_path, "garbage", {"config.json": "{nope"})
    for model in (f"hf:{garbage}", "hf:nobody-xyz/no-such-model"):
        assert main(["evaluate", "--model", model, "--benchmarks", "logprob"]) == 2
        err = capsys.readouterr().err
        assert ("garbage/config.json is not valid JSON" in err) or ("nobody-xyz/no-such-model" in err), err
    client = MlflowClient(tracking_uri)
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])


# ---------------------------------------------------------------- adapters only through ChatModel methods
def _saved_lora(chat, out, seed=1):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(seed)
    cfg = LoraConfig(r=4, lora_alpha=8, init_lora_weights=False, task_type="CAUSAL_LM",
                     target_modules=["q_proj", "v_proj"])
    pm = get_peft_model(chat.model, cfg)
    pm.save_pretrained(str(out))
    chat.release_trained(pm)  # what a trainer hands back: a fresh LoRA around the base
    return out


def test_adapter_context_restores_the_clean_base(tmp_path):
    chat = load_model("random:tiny", device="cpu")
    ids = torch.tensor([[1, 5, 9, 14, 3, 7]])
    with torch.inference_mode():
        base = chat.model(input_ids=ids).logits
        a = _saved_lora(chat, tmp_path / "a")
        assert chat.clean and torch.allclose(chat.model(input_ids=ids).logits, base)
        with chat.adapter(a) as m:
            assert m is chat and chat.adapter_path == str(a) and not chat.clean
            adapted = chat.model(input_ids=ids).logits
            with pytest.raises(ModelError, match="already attached"):
                chat.attach_adapter(a)
        assert not torch.allclose(adapted, base, atol=1e-3)
        assert chat.clean and torch.allclose(chat.model(input_ids=ids).logits, base)
        with chat.adapter(None) as m:  # None = the base
            assert torch.allclose(m.model(input_ids=ids).logits, base)
        with pytest.raises(RuntimeError):  # detached even when the body fails
            with chat.adapter(a):
                raise RuntimeError("boom")
        assert chat.clean and not hasattr(chat.model, "peft_config")
        chat.merge_adapter(a)
        assert chat.merged == [str(a)] and not chat.clean and chat.adapter_path is None
        assert torch.allclose(chat.model(input_ids=ids).logits, adapted, atol=1e-4)
