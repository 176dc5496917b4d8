"""Collection with the embedded model and the scripted simulator: ratings, storage, resume after interruption."""

from __future__ import annotations

import json

import pytest

from emd.interaction.dialogue import TrajectoryStore, collect
from emd.interaction.personas import build_population
from emd.interaction.simulator import ScriptedSimulator


class Interrupt(Exception):
    """Raised from the progress hook to stop a collection midway, as a crash would."""


@pytest.mark.slow
def test_interrupted_collection_resumes(embedded_model, scenarios, rule, tmp_path):
    specs = build_population(scenarios, 4, 0.5, seed=11)
    sim = ScriptedSimulator(rule)
    store = TrajectoryStore(tmp_path / "trajectories.jsonl")
    kw = dict(turns=2, temperature=0.9, reply_tokens=10, seed=5, store=store, rule=rule, chunk_size=2)

    def stop_after_first_chunk(n_stored: int) -> None:
        raise Interrupt(f"stopped with {n_stored} stored")

    with pytest.raises(Interrupt, match="stopped with 2 stored"):
        collect(embedded_model, specs, sim, on_stored=stop_after_first_chunk, **kw)
    stored = store.load()
    assert sorted(stored) == sorted(s.id for s in specs[:2])
    first_run = {k: v.to_json() for k, v in stored.items()}

    # a crash in the middle of the next append leaves a torn line: it is dropped, not trusted
    with open(store.path, "a") as f:
        f.write('{"id": "c002-torn", "index"')
    calls = []
    logs = []
    trajs = collect(embedded_model, specs, sim, on_stored=calls.append, log=logs.append, **kw)
    assert calls == [4]  # only the second chunk was collected
    assert any("resuming, 2 of 4" in m for m in logs)
    assert [t.id for t in trajs] == [s.id for s in specs]
    assert {t.id: t.to_json() for t in trajs[:2]} == first_run  # stored ones are reused as they were
    lines = store.path.read_text().splitlines()
    assert len(lines) == 4 and all(json.loads(x)["id"] for x in lines)

    for t, s in zip(trajs, specs):
        assert t.biased == s.biased and t.scenario_id == s.scenario.id
        assert [m["role"] for m in t.messages] == ["system", "user", "assistant", "user", "assistant"]
        assert t.messages[1]["content"] == s.persona.opening
        assert len(t.ratings) == 2 and all(1.0 <= r["value"] <= 10.0 for r in t.ratings)
        assert t.satisfaction == pytest.approx(sum(r["value"] for r in t.ratings) / 2)
        assert len(t.validation) == len(t.help) == 2 and t.complete
    # sampling at temperature > 0: the assistant's replies differ between conversations
    assert len({t.messages[2]["content"] for t in trajs}) > 1

    # a complete store: nothing is generated again
    calls.clear()
    again = collect(embedded_model, specs, sim, on_stored=calls.append, **kw)
    assert calls == [] and [t.to_json() for t in again] == [t.to_json() for t in trajs]


def test_bad_store_line_is_reported(tmp_path):
    from emd.errors import DataError

    p = tmp_path / "t.jsonl"
    p.write_text('{"not": "a trajectory"}\n{"id": 1}\n')
    with pytest.raises(DataError, match="t.jsonl: row 1: not a stored trajectory"):
        TrajectoryStore(p).load()
