"""The training-scale keys: validated before any model loads, each error naming its key, all logged."""

import importlib.util

import pytest

from emd.cli import main as cli_main
from emd.cli import parse_config
from emd.config import to_flat_dict
from emd.errors import ConfigError

NEW_KEYS = {"gradient_checkpointing", "load_in_4bit", "load_in_8bit", "device_map", "attn_implementation", "optim",
            "lr_scheduler_type", "save_steps", "packing", "resume"}


@pytest.mark.parametrize("entry", ["mixture", "direct", "interaction", "sweep"])
def test_every_training_entry_has_the_keys_as_params(entry):
    flat = to_flat_dict(parse_config(entry, []))
    assert NEW_KEYS <= set(flat)  # to_flat_dict is what ctx.run logs as params


@pytest.mark.parametrize("argv, key", [
    (["--optim", "adamx"], "optim"),
    (["--lr-scheduler-type", "cosinus"], "lr_scheduler_type"),
    (["--device-map", "gpu0"], "device_map"),
    (["--device-map", "{not json"], "device_map"),
    (["--attn-implementation", "flash"], "attn_implementation"),
    (["--save-steps", "-1"], "save_steps"),
    (["--load-in-4bit", "true", "--load-in-8bit", "true", "--model", "random:tiny"], "load_in_4bit"),
    (["--load-in-8bit", "true"], "load_in_8bit"),  # embedded: is a GGUF-converted float model
    (["--load-in-4bit", "true", "--model", "random:tiny"], "load_in_4bit"),  # built in float, not loaded
    (["--device-map", "auto", "--model", "random:tiny"], "device_map"),
])
def test_bad_values_name_the_key(argv, key):
    with pytest.raises(ConfigError, match=key):
        parse_config("mixture", argv)


def test_packing_with_kto_is_refused():
    with pytest.raises(ConfigError, match="packing"):
        parse_config("interaction", ["--packing", "true", "--method", "sft,kto"])


def test_good_values_pass():
    cfg = parse_config("mixture", ["--optim", "adafactor", "--lr-scheduler-type", "cosine", "--device-map", "auto",
                                   "--attn-implementation", "sdpa", "--save-steps", "2", "--gradient-checkpointing",
                                   "true", "--packing", "true", "--resume", "true"])
    assert (cfg.train.optim, cfg.train.lr_scheduler_type, cfg.model.device_map) == ("adafactor", "cosine", "auto")
    assert cfg.train.save_steps == 2 and cfg.train.packing and cfg.common.resume


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed here")
def test_4bit_without_bitsandbytes_exits_2_before_loading(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    rc = cli_main(["mixture", "--model", f"hf:{tmp_path}", "--load-in-4bit", "true", "--benchmarks", "none"])
    err = capsys.readouterr().err
    assert rc == 2 and "load_in_4bit=true needs bitsandbytes" in err and "emd[quant]" in err
    assert not (tmp_path / "mlflow.db").exists()  # stopped before any run (or model) existed
