"""Config precedence (defaults < YAML < flags), unknown keys, type errors and range checks."""

import pytest

from emd.cli import main as cli_main
from emd.cli import parse_config
from emd.config import MixtureConfig, build_config, flat_fields, to_flat_dict, to_yaml
from emd.errors import ConfigError, EmdError, ModelError


def test_defaults_then_yaml_then_flags(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("ratio: 0.2\nn_train: 100\nlora:\n  r: 4\nseed: 3\n")
    cfg = parse_config("mixture", ["--config", str(y), "--ratio", "0.1", "--lora-alpha", "8"])
    assert cfg.ratio_list == [0.1]  # flag beats YAML
    assert cfg.data.n_train == 100  # YAML beats default
    assert cfg.lora.r == 4  # nested YAML section
    assert cfg.lora.alpha == 8
    assert cfg.common.seed == 3
    assert cfg.train.learning_rate == MixtureConfig().train.learning_rate  # default kept


def test_snake_case_flags_and_empty_means_unset(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("ratio: 0.3\n")
    # MLproject passes undeclared -P keys as --snake_case, declared-but-unset ones as ''
    cfg = parse_config("mixture", ["--config", str(y), "--ratio", "", "--n_train", "50"])
    assert cfg.ratio_list == [0.3] and cfg.data.n_train == 50


def test_unknown_yaml_key_fails_with_suggestion(tmp_path):
    y = tmp_path / "run.yaml"
    y.write_text("n_trian: 10\n")
    with pytest.raises(ConfigError, match="n_trian.*did you mean n_train"):
        parse_config("mixture", ["--config", str(y)])
    y.write_text("lora:\n  rank: 4\n")
    with pytest.raises(ConfigError, match="lora.rank"):
        parse_config("mixture", ["--config", str(y)])


def test_unknown_flag_and_entry(capsys):
    assert cli_main(["mixture", "--n-trian", "3"]) == 2
    assert "did you mean --n-train" in capsys.readouterr().err
    assert cli_main(["mixtur"]) == 2
    assert "did you mean mixture" in capsys.readouterr().err


@pytest.mark.parametrize("flags,match", [
    (["--ratio", "1.5"], r"ratio=1.5; allowed: a number in \[0, 1\]"),
    (["--ratio", "-0.1"], r"allowed: a number in \[0, 1\]"),
    (["--ratio", "abc"], r"ratio=abc; allowed: a number in \[0, 1\].*or a comma list"),
    (["--ratio", "0.1,abc"], r"ratio=0.1,abc; allowed: a number in \[0, 1\]"),
    (["--ratio", "0.1,0.1"], "repeats a value; allowed: distinct"),
    (["--ratio", "0.5,0.01", "--n-train", "20"], "n_train=20 is too small for ratio=0.01"),
    (["--ratio", "0.1,0.2", "--storage", "redis://h"], "storage='redis://h'; allowed: an Optuna RDB URL"),
    (["--n-train", "ten"], "not an integer"),
    (["--ratio", "0.01", "--n-train", "20"], "n_train=20 is too small for ratio=0.01.*n_train >= 50"),
    (["--register", "maybe"], "allowed: true or false"),
    (["--benchmarks", "mask,maks"], "did you mean mask"),
    (["--judge", "gpt4"], "allowed: embed:minilm, openai:<model>, hf:<path>"),
    (["--domain", "medicine"], "allowed: medical, math, code"),
    (["--level", "extreme"], "allowed: normal, subtle, severe"),
])
def test_bad_values_name_input_and_allowed(flags, match):
    with pytest.raises(EmdError, match=match):
        parse_config("mixture", flags)


def test_unknown_model_uri():
    with pytest.raises(ModelError, match="allowed: embedded:smollm2, hf:"):
        parse_config("mixture", ["--model", "llama3"])
    with pytest.raises(ModelError, match="random:tiny"):
        parse_config("mixture", ["--model", "random:huge"])
    with pytest.raises(ModelError, match="does not exist"):
        parse_config("mixture", ["--model", "gguf:/nonexistent/x.gguf"])


def test_yaml_roundtrip_and_flat_keys_unique(tmp_path):
    cfg = parse_config("mixture", ["--ratio", "0.1", "--lora-r", "4"])
    y = tmp_path / "c.yaml"
    y.write_text(to_yaml(cfg))
    again = build_config(MixtureConfig, yaml_path=y)
    assert again == cfg
    for cls in ("mixture", "direct", "interaction", "sweep", "evaluate"):
        from emd.config import ENTRY_CONFIGS

        keys = flat_fields(ENTRY_CONFIGS[cls])
        assert len(keys) == len(set(keys))
    assert all(len(str(v)) <= 500 for v in to_flat_dict(cfg).values())


def test_configs_are_frozen():
    cfg = MixtureConfig()
    with pytest.raises(Exception):
        cfg.ratio = 0.5  # type: ignore[misc]
