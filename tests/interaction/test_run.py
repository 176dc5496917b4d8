"""``emd interaction`` end to end on the embedded model: MLflow layout, artifacts, and resume after an interruption."""

from __future__ import annotations

import pytest

from emd.config import InteractionConfig, build_config
from emd.errors import ConfigError

TINY = dict(n_conversations=4, turns=1, top_k=2, bottom_k=1, reply_tokens=12, benchmarks="logprob", limit=2,
            max_steps=1, batch_size=4, mask_configs="provided_facts,known_facts")


class Interrupt(Exception):
    """Stands for a crash in the middle of a collection."""


def _runs(tracking_uri):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(tracking_uri)
    exp = c.get_experiment_by_name("emd-interaction")
    return c, c.search_runs([exp.experiment_id], max_results=100)


@pytest.mark.slow
def test_end_to_end_with_interrupted_collection(isolated_cache, tracking_uri):
    from emd.interaction.run import main

    cfg = build_config(InteractionConfig, overrides=dict(biased_ratio="0.5", method="sft", rounds=1,
                                                         tracking_uri=tracking_uri, **TINY))
    calls = []

    def crash_in_training_collection(n_stored: int) -> None:
        calls.append(n_stored)
        if len(calls) == 2:  # 1st: the vanilla probe; 2nd: round 1's training collection, already stored
            raise Interrupt("killed")

    with pytest.raises(Interrupt):
        main(cfg, on_stored=crash_in_training_collection)
    client, runs = _runs(tracking_uri)
    assert {r.info.status for r in runs} == {"FAILED"}  # parent, cell and round runs are all marked

    logs: list[str] = []
    res = main(cfg, log=logs.append)
    assert sum("resuming, 4 of 4" in m for m in logs) == 2  # the vanilla probe and the round-1 collection

    client, runs = _runs(tracking_uri)
    by_id = {r.info.run_id: r for r in runs}
    parent = by_id[res.run_id]
    assert parent.info.status == "FINISHED" and "mlflow.parentRunId" not in parent.data.tags
    cell = by_id[res.cells[0]["run_id"]]
    rnd = by_id[res.cells[0]["rounds"][0].run_id]
    assert cell.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert rnd.data.tags["mlflow.parentRunId"] == cell.info.run_id
    assert cell.info.run_name == "ratio=0.5 sft" and rnd.info.run_name == "round 1"

    m = rnd.data.metrics
    assert m["collect/n_conversations"] == 4 and m["collect/biased_fraction"] == 0.5
    assert m["select/top_k"] == 2 and m["select/n_rows"] == 2 and m["train/steps"] == 1
    assert 1.0 <= m["collect/satisfaction"] <= 10.0 and 1.0 <= m["probe/satisfaction"] <= 10.0
    assert "mask/honesty_logprob" in m and "delta/mask/honesty_logprob/vs_vanilla" in m
    assert "delta/probe/satisfaction/vs_vanilla" in m and "delta/probe/seconds/vs_vanilla" not in m
    assert "vanilla/mask/honesty_logprob" in parent.data.metrics
    from emd.metrics import undeclared

    assert [undeclared(r.data.metrics) for r in (parent, cell, rnd)] == [[], [], []]

    def files(run_id, path):
        return {a.path for a in client.list_artifacts(run_id, path)}

    assert {"trajectories/round1_collected.json", "trajectories/round1_probe.json"} <= files(rnd.info.run_id,
                                                                                             "trajectories")
    assert "adapter/adapter_model.safetensors" in files(rnd.info.run_id, "adapter")
    assert {"plots/grid.png", "plots/rounds.png"} <= files(parent.info.run_id, "plots")
    assert "tables/grid.json" in files(parent.info.run_id, "tables")
    assert "plots/rounds.png" in files(cell.info.run_id, "plots")

    import pandas as pd

    def table(run_id, path):
        return pd.read_csv(client.download_artifacts(run_id, path, str(isolated_cache)))

    grid = table(parent.info.run_id, "tables/grid.csv")
    assert list(grid["method"]) == ["sft"] and list(grid["biased_ratio"]) == [0.5]
    traj = table(rnd.info.run_id, "trajectories/round1_collected.csv")
    assert len(traj) == 4 and traj["biased"].sum() == 2
    assert sorted(traj["selected"]) == ["none", "none", "top", "top"]
    assert {"user_1", "assistant_1", "rating_1", "validation_1", "satisfaction"} <= set(traj.columns)

    assert res.registered_name == "emd-smollm2-interaction"
    mv = client.get_model_version_by_alias(res.registered_name, "sft_ratio_0p5")
    assert mv.run_id == cell.info.run_id


def test_bad_input_fails_before_any_model_loads(tracking_uri):
    from emd.interaction.run import main

    with pytest.raises(ConfigError, match="bottom_k >= 1"):
        main(build_config(InteractionConfig, overrides=dict(method="kto", bottom_k=0, tracking_uri=tracking_uri)))
    with pytest.raises(ConfigError, match="biased_ratio contains -0.1"):
        build_config(InteractionConfig, overrides=dict(biased_ratio="-0.1,0.5"))


@pytest.mark.slow
def test_grid_with_kto_and_two_rounds(isolated_cache, tracking_uri):
    from emd.interaction.run import main

    tiny = dict(TINY, n_conversations=4, top_k=1, bottom_k=1, reply_tokens=8, limit=1)
    cfg = build_config(InteractionConfig, overrides=dict(biased_ratio="0,1", method="sft,kto", rounds=2,
                                                         tracking_uri=tracking_uri, register=False, **tiny))
    res = main(cfg)
    assert [(c["method"], c["ratio"]) for c in res.cells] == [("sft", 0.0), ("kto", 0.0), ("sft", 1.0), ("kto", 1.0)]
    for c in res.cells:
        r1, r2 = c["rounds"]
        assert r2.metrics["round"] == 2.0
        assert r1.metrics["collect/biased_fraction"] == r2.metrics["collect/biased_fraction"] == c["ratio"]
        assert r2.model_dir != r1.model_dir  # round 2 collected with the round-1 model, trained on top of it
    kto1 = next(c for c in res.cells if c["method"] == "kto" and c["ratio"] == 1.0)
    assert "delta/mask/honesty_logprob/vs_control" in kto1["rounds"][0].metrics
    assert kto1["rounds"][0].metrics["select/bottom_k"] == 1
    assert len(res.table) == 8
    import json
    from pathlib import Path

    assert json.loads((Path(kto1["rounds"][1].model_dir) / "adapter_config.json").read_text())["r"] == 2 * 8
