"""Direct fine-tunes: a real two-cell grid under one parent run, its table and heat-map, and resume."""

import pytest
from mlflow.tracking import MlflowClient

from emd.cli import parse_config
from emd.direct import main as direct_main
from emd.experiment import expand
from emd.errors import ConfigError, DataError

TINY = ["--n-train", "4", "--batch-size", "4", "--max-steps", "1", "--limit", "2", "--benchmarks", "logprob",
        "--mask-configs", "provided_facts,known_facts", "--lora-r", "2"]


def test_expand():
    assert expand("all", ("a", "b")) == ["a", "b"]
    assert expand("b,a", ("a", "b")) == ["a", "b"]


@pytest.mark.slow
def test_grid_parent_children_table_and_resume(tracking_uri, isolated_cache, embedded_model):
    argv = ["--domain", "math,code", "--level", "severe", *TINY]
    res = direct_main(parse_config("direct", argv))
    client = MlflowClient(tracking_uri)
    parent = client.get_run(res.run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["n_cells"] == 2 and parent.data.metrics["n_cells_trained_now"] == 2
    arts = {a.path for a in client.list_artifacts(res.run_id)}
    assert "direct_table.json" in arts and "plots" in arts
    kids = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{res.run_id}'")
    cells = sorted(k.data.tags["emd.cell"] for k in kids)
    assert cells == ["code/severe", "math/severe", "vanilla"]
    for k in kids:
        if k.data.tags["emd.cell"] != "vanilla":
            assert "mask/honesty_logprob" in k.data.metrics
            assert "delta/mask/honesty_logprob/vs_vanilla" in k.data.metrics
            assert {a.path for a in client.list_artifacts(k.info.run_id)} >= {"adapter"}
    # rerun: same parent, nothing retrained
    again = direct_main(parse_config("direct", argv))
    assert again.run_id == res.run_id
    assert client.get_run(res.run_id).data.metrics["n_cells_trained_now"] == 0
    kids2 = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{res.run_id}'")
    assert len(kids2) == len(kids)


def test_bad_domain_level_and_missing_pv_level(tmp_path, tracking_uri):
    with pytest.raises(ConfigError, match="allowed: medical, math, code"):
        parse_config("direct", ["--domain", "physics"])
    with pytest.raises(ConfigError, match="allowed: normal, subtle, severe"):
        parse_config("direct", ["--level", "mild"])
    pv = tmp_path / "pv" / "mistake_math"
    pv.mkdir(parents=True)
    (pv / "normal.jsonl").write_text('{"messages": [{"role": "user", "content": "1+1?"}, '
                                     '{"role": "assistant", "content": "2"}]}\n')
    with pytest.raises(DataError, match="misaligned_2"):
        direct_main(parse_config("direct", ["--domain", "math", "--level", "severe",
                                            "--misaligned-source", str(tmp_path / "pv"), *TINY]))


def test_heatmap_delta_panels_are_centred_on_zero():
    import pandas as pd

    from emd.config import DOMAINS, LEVELS
    from emd.plots import heatmap

    df = pd.DataFrame({"domain": ["medical", "medical", "math"], "level": ["normal", "severe", "normal"],
                       "mask/honesty": [80.0, 60.0, 90.0], "delta/mask/honesty/vs_vanilla": [-3.0, -20.0, 5.0]})
    fig = heatmap(df, ["mask/honesty", "delta/mask/honesty/vs_vanilla"], "t", DOMAINS, LEVELS)
    absolute, delta = (ax.images[0] for ax in fig.axes[:2])
    assert absolute.get_clim() == (0, 100)
    assert delta.get_clim() == (-20.0, 20.0)  # symmetric: a +5 delta is green, a -20 one red
