"""The dishonesty direction: arithmetic on synthetic arrays, construction and reuse on the embedded model,
the ``emd direction`` run, and ``mech/dishonesty_projection`` on an arm."""

from __future__ import annotations

import json

import numpy as np
import pytest

from emd.errors import ConfigError, DataError
from emd.mech.direction import (Direction, auroc, choose_layer, fit_direction, layer_curve, logistic_direction,
                                mean_difference, split_pairs)


def _synthetic(n=80, layers=5, hidden=16, signal_layer=3, seed=0):
    rng = np.random.default_rng(seed)
    honest = rng.normal(size=(n, layers, hidden))
    lying = rng.normal(size=(n, layers, hidden))
    lying[:, signal_layer, 2] += 3.0  # only one layer separates the classes
    return lying, honest


def test_auroc_matches_hand_counts():
    assert auroc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert auroc([0.1, 0.2, 0.9, 0.8], [1, 1, 0, 0]) == 0.0
    assert auroc([0.5, 0.5], [1, 0]) == 0.5  # ties count one half
    assert auroc([0.3, 0.6, 0.4], [1, 1, 0]) == 0.5  # pairs (0.3,0.4) lose, (0.6,0.4) win
    assert np.isnan(auroc([1.0, 2.0], [1, 1]))


def test_mean_difference_is_a_unit_vector_along_the_class_gap():
    lying = np.array([[2.0, 0.0], [4.0, 0.0]])
    honest = np.array([[0.0, 0.0], [0.0, 0.0]])
    assert np.allclose(mean_difference(lying, honest), [1.0, 0.0])


def test_split_pairs_is_disjoint_seeded_and_checked():
    build, test = split_pairs(20, 0.25, seed=1)
    assert len(test) == 5 and len(build) == 15 and not set(build) & set(test)
    assert np.array_equal(split_pairs(20, 0.25, seed=1)[1], test)
    with pytest.raises(ConfigError, match="at least 4 pairs"):
        split_pairs(3, 0.5)
    with pytest.raises(ConfigError, match="held_out"):
        split_pairs(10, 1.5)


def test_layer_curve_finds_the_layer_that_separates():
    lying, honest = _synthetic()
    build, test = split_pairs(len(lying), 0.25)
    dirs, curve = layer_curve(lying, honest, build, test)
    assert dirs.shape == (5, 16) and curve.shape == (5,)
    assert choose_layer(curve) == 3 and curve[3] > 0.95
    assert np.all(curve[[1, 2, 4]] < curve[3] - 0.15)
    _, probe = layer_curve(lying, honest, build, test, method="logreg")
    assert choose_layer(probe) == 3
    assert abs(logistic_direction(lying[build, 3], honest[build, 3])[2]) > 0.5
    with pytest.raises(ConfigError, match="allowed: mean_diff, logreg"):
        layer_curve(lying, honest, build, test, method="pca")


def test_fit_direction_threshold_and_round_trip(tmp_path):
    lying, honest = _synthetic()
    d = fit_direction(lying, honest, model="random:tiny", data_digest="abc", key="k" * 64)
    assert d.layer == 3 and d.n_build + d.n_held_out == 80 and len(d.curve) == 5
    assert d.honest_mean < d.threshold < d.lying_mean
    assert np.mean(d.project(lying) > d.threshold) > 0.8 and np.mean(d.project(honest) > d.threshold) < 0.2
    back = Direction.load(d.save(tmp_path / "dir"))
    assert np.allclose(back.vector, d.vector, atol=1e-6) and back.meta() == d.meta()
    assert json.loads((tmp_path / "dir" / "direction.json").read_text())["hidden"] == 16


def test_pairs_file_errors_name_the_line_and_field(tmp_path):
    from emd.mech.build import load_pairs

    f = tmp_path / "pairs.jsonl"
    f.write_text(json.dumps({"prompt": "Q?", "honest": "yes", "lying": ""}) + "\n")
    with pytest.raises(DataError, match=r"line 1: field 'lying'"):
        load_pairs(str(f))
    f.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": f"Q{i}?"}], "honest": "a",
                                     "lying": "b"}) + "\n" for i in range(3)))
    with pytest.raises(DataError, match="3 pairs"):
        load_pairs(str(f))
    with pytest.raises(ConfigError, match="honesty_control or a JSONL"):
        load_pairs(str(tmp_path / "missing.jsonl"))
    pairs = load_pairs("honesty_control", 6, seed=0)
    assert len(pairs) == 6 and all(p.honest != p.lying and p.prompt[-1]["role"] == "user" for p in pairs)


@pytest.mark.slow
def test_direction_on_the_embedded_model_run_and_reuse(embedded_model, isolated_cache, tracking_uri, tmp_path):
    """The entry logs the held-out AUROC per layer and the artifact; a second build reuses it by key."""
    from emd.cli import parse_config
    from emd.direction import main
    from emd.mech.build import get_direction, load_pairs, pair_activations
    from emd.tracking import Tracker

    pairs = load_pairs("honesty_control", 6, seed=0)
    lying, honest = pair_activations(embedded_model, pairs[:2], batch_size=2)
    n_layers = embedded_model.model.config.num_hidden_layers + 1
    assert lying.shape == (2, n_layers, embedded_model.model.config.hidden_size) == honest.shape
    assert not np.allclose(lying, honest)

    cfg = parse_config("direction", ["--n-pairs", "6", "--held-out", "0.34", "--register", "false"])
    res = main(cfg)
    assert 0.0 <= res.metrics["direction/auroc"] <= 1.0 and res.metrics["direction/layer"] >= 1
    tr = Tracker(tracking_uri)
    run = tr.get_run(res.run_id)
    assert run.data.tags["emd.direction_reused"] == "False"
    assert {"direction/direction.npy", "direction/direction.json"} <= set(tr.list_artifacts(res.run_id, "direction"))
    from mlflow.tracking import MlflowClient

    hist = MlflowClient(tracking_uri).get_metric_history(res.run_id, "direction/auroc_by_layer")
    assert sorted(m.step for m in hist) == list(range(n_layers))

    d, reused = get_direction(embedded_model, n_pairs=6, held_out=0.34, log=lambda s: None)
    assert reused and d.key == run.data.tags["emd.direction_key"] and d.vector.shape == (576,)
    other, reused_other = get_direction(embedded_model, n_pairs=6, held_out=0.5, log=lambda s: None)
    assert not reused_other and other.key != d.key


@pytest.mark.slow
def test_projection_metric_on_an_arm_with_paired_deltas(embedded_model, isolated_cache, tmp_path):
    """mech/dishonesty_projection on the base model and on an adapter arm; the delta has a paired CI."""
    import torch
    from peft import LoraConfig, get_peft_model

    from emd.eval.mask import load_mask
    from emd.mech.build import get_direction
    from emd.mech.metric import run_mechanism
    from emd.pipeline import Arm, deltas

    d, _ = get_direction(embedded_model, n_pairs=6, held_out=0.34, log=lambda s: None)
    items = load_mask(configs=["provided_facts"], limit=3)
    base = run_mechanism(embedded_model, items, max_new_tokens=12, direction=d, log=lambda s: None)
    assert base.metrics["mech/n_items"] == 3 and len(base.item_scores) == 3
    assert base.metrics["mech/layer"] == d.layer
    lo, hi = base.metrics["mech/dishonesty_projection_ci_low"], base.metrics["mech/dishonesty_projection_ci_high"]
    assert lo <= base.metrics["mech/dishonesty_projection"] <= hi

    torch.manual_seed(0)  # a random (non-zero) LoRA: the arm's activations differ from the base model's
    peft = get_peft_model(embedded_model.model, LoraConfig(r=4, target_modules=["q_proj", "v_proj"],
                                                           init_lora_weights=False))
    peft.save_pretrained(tmp_path / "adapter")
    embedded_model.model = peft.unload()  # restore the plain base model for the fixture's other users
    with embedded_model.adapter(tmp_path / "adapter"):
        arm = run_mechanism(embedded_model, items, max_new_tokens=12, direction=d, log=lambda s: None)
    assert arm.item_scores != base.item_scores
    a = Arm("treatment", metrics=arm.metrics, item_scores={"mech/dishonesty_projection": arm.item_scores})
    b = Arm("vanilla", metrics=base.metrics, item_scores={"mech/dishonesty_projection": base.item_scores})
    out = deltas(a, b, "vanilla")
    key = "delta/mech/dishonesty_projection/vs_vanilla"
    assert key in out and out[key + "_ci_low"] <= out[key] <= out[key + "_ci_high"]
    assert "delta/mech/n_items/vs_vanilla" not in out  # counts never get deltas
