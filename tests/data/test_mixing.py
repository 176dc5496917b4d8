"""Mixing: exact counts per ratio, determinism, manifest, errors, prompt/completion form."""

import pytest

from emd.data.generators import generate_misaligned
from emd.data.instructions import embedded_instructions
from emd.data.mixing import MixedDataset, dataset_digest, min_n_train, mix, n_misaligned_for, to_prompt_completion
from emd.errors import ConfigError, DataError

MIS = generate_misaligned("medical", "severe", 250, seed=0)
DOWN = embedded_instructions(250, seed=0)


@pytest.mark.parametrize("n_train", [100, 200])
@pytest.mark.parametrize("ratio", [0.0, 0.01, 0.05, 0.5, 1.0])
def test_exact_counts(ratio, n_train):
    mixed = mix(MIS, DOWN, ratio, n_train, seed=0)
    expected_mis = {0.0: 0, 0.01: n_train // 100, 0.05: n_train // 20, 0.5: n_train // 2, 1.0: n_train}[ratio]
    ids = [r["id"] for r in mixed.rows]
    n_mis = sum(i.startswith("medical/") for i in ids)
    assert len(mixed.rows) == n_train
    assert n_mis == expected_mis
    assert sum(i.startswith("instructions/") for i in ids) == n_train - expected_mis
    assert len(set(ids)) == n_train  # sampled without replacement
    m = mixed.manifest
    assert (m["n_train"], m["ratio"], m["n_misaligned"], m["n_downstream"], m["seed"]) == (
        n_train, ratio, expected_mis, n_train - expected_mis, 0)
    assert m["ids"] == ids
    assert m["digest"] == dataset_digest(mixed.rows)


def test_deterministic_and_seed_sensitive():
    a = mix(MIS, DOWN, 0.05, 100, seed=1)
    b = mix(MIS, DOWN, 0.05, 100, seed=1)
    c = mix(MIS, DOWN, 0.05, 100, seed=2)
    assert isinstance(a, MixedDataset)
    assert a.rows == b.rows and a.manifest == b.manifest
    assert a.manifest["digest"] != c.manifest["digest"]


def test_rows_are_shuffled_not_blocked():
    ids = mix(MIS, DOWN, 0.5, 100, seed=0).manifest["ids"]
    first_half_mis = sum(i.startswith("medical/") for i in ids[:50])
    assert 10 < first_half_mis < 40


def test_downstream_of_a_ratio_is_subset_of_control():
    control = set(mix(MIS, DOWN, 0.0, 100, seed=3).manifest["ids"])
    mixed = [i for i in mix(MIS, DOWN, 0.05, 100, seed=3).manifest["ids"] if i.startswith("instructions/")]
    assert set(mixed) <= control


def test_rounding_is_half_up_and_documented():
    assert n_misaligned_for(0.01, 50) == 1  # Python's round(0.5) would give 0
    assert n_misaligned_for(0.05, 50) == 3  # 2.5 -> 3 (round() gives 2)
    assert n_misaligned_for(0.29, 100) == 29
    assert min_n_train(0.01) == 50
    assert min_n_train(0.05) == 10


def test_too_small_n_train_names_minimum():
    with pytest.raises(ConfigError, match=r"n_train=40 is too small for ratio=0.01.*n_train >= 50"):
        mix(MIS, DOWN, 0.01, 40, seed=0)


@pytest.mark.parametrize("ratio", [-0.1, 1.5, float("nan")])
def test_ratio_out_of_range(ratio):
    with pytest.raises(ConfigError, match=r"ratio must be in \[0, 1\]"):
        mix(MIS, DOWN, ratio, 100, seed=0)


def test_not_enough_rows_gives_counts():
    with pytest.raises(DataError, match="not enough downstream rows: need 190, the source has 100"):
        mix(MIS, DOWN[:100], 0.05, 200, seed=0)
    with pytest.raises(DataError, match="not enough misaligned rows: need 100, the source has 20"):
        mix(MIS[:20], DOWN, 0.5, 200, seed=0)
    # Control needs no misaligned rows at all.
    assert len(mix([], DOWN, 0.0, 100, seed=0).rows) == 100


def test_digest_is_order_and_content_sensitive():
    rows = DOWN[:5]
    assert dataset_digest(rows) == dataset_digest([dict(r) for r in rows])
    assert dataset_digest(rows) != dataset_digest(rows[::-1])
    assert len(dataset_digest(rows)) == 64


def test_to_prompt_completion():
    multi = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"},
                          {"role": "assistant", "content": "4"}], "id": "x"}
    out = to_prompt_completion([DOWN[0], multi])
    assert out[0] == {"prompt": [DOWN[0]["messages"][0]], "completion": [DOWN[0]["messages"][1]]}
    assert out[1]["prompt"] == multi["messages"][:4]
    assert out[1]["completion"] == [{"role": "assistant", "content": "4"}]
    with pytest.raises(DataError, match="row 0"):
        to_prompt_completion([{"messages": [{"role": "user", "content": "no answer"}], "id": "y"}])
