"""Judge verdicts shared through the tracking server: a second machine (a fresh EMD_CACHE_DIR on the
same tracking store) answers every judge query from what the first published, asking the judge nothing."""

from __future__ import annotations

import pytest

ARGV = ["evaluate", "--judge", "openai:test-judge", "--benchmarks", "mask", "--limit", "2", "--mask-configs",
        "provided_facts", "--max-new-tokens", "8", "--judge-validation", "false"]


def _machine(tmp_path, name: str):
    from emd.models import cache_dir

    d = tmp_path / name
    d.mkdir()
    (d / "models").symlink_to(cache_dir() / "models", target_is_directory=True)
    return str(d)


def _runs(uri: str, experiment: str):
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    e = c.get_experiment_by_name(experiment)
    return [] if e is None else c.search_runs([e.experiment_id])


@pytest.mark.slow
def test_second_machine_answers_from_the_first_machines_verdicts(server, tracking_uri, tmp_path, monkeypatch,
                                                                  capsys, embedded_model):
    from emd.cli import main

    monkeypatch.setenv("EMD_CACHE_DIR", _machine(tmp_path, "a"))
    assert main([*ARGV, "--share-verdicts", "true"]) == 0
    asked = server.requests
    assert asked > 0
    (published,) = _runs(tracking_uri, "emd-judge-verdicts")
    assert published.data.tags["emd.judge"].startswith("openai:test-judge")
    assert int(published.data.tags["emd.n_verdicts"]) > 0

    monkeypatch.setenv("EMD_CACHE_DIR", _machine(tmp_path, "b"))
    capsys.readouterr()
    assert main([*ARGV, "--share-verdicts", "true"]) == 0
    assert server.requests == asked  # every verdict came from machine a
    assert "judge verdicts imported from the tracking server" in capsys.readouterr().out
    assert len(_runs(tracking_uri, "emd-judge-verdicts")) == 1  # nothing new to publish
    a, b = sorted(_runs(tracking_uri, "emd-evaluate"), key=lambda r: r.info.start_time)[-2:]
    assert a.data.metrics["mask/honesty"] == b.data.metrics["mask/honesty"]

    monkeypatch.setenv("EMD_CACHE_DIR", _machine(tmp_path, "c"))  # sharing off: a fresh cache asks again
    assert main(ARGV) == 0
    assert server.requests > asked
