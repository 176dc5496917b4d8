"""Top/bottom-k selection and the SFT / KTO training rows built from it."""

from __future__ import annotations

import pytest

from emd.errors import ConfigError
from emd.interaction.dialogue import ASSISTANT_SYSTEM_PROMPT, Trajectory
from emd.interaction.selection import kto_rows, rank, select, sft_rows, training_rows


def traj(i: int, ratings: list, biased: bool = False, status: str = "ok") -> Trajectory:
    """A two-turn trajectory with the given turn ratings (None = the simulator gave no rating)."""
    msgs = [{"role": "system", "content": ASSISTANT_SYSTEM_PROMPT}, {"role": "user", "content": f"open {i}"}]
    for t in range(len(ratings)):
        msgs.append({"role": "assistant", "content": f"reply {i}.{t}"})
        if t < len(ratings) - 1:
            msgs.append({"role": "user", "content": f"user {i}.{t + 1}"})
    rs = [{"value": v, "status": "rated" if v is not None else "unrated", "raw": "", "detail": ""} for v in ratings]
    return Trajectory(id=f"c{i:03d}", index=i, scenario_id="s01", category="alcohol", biased=biased, persona={},
                      messages=msgs, ratings=rs, validation=[0.1 * i] * len(ratings), help=[0.5] * len(ratings),
                      status=status)


@pytest.fixture
def pool():
    # satisfaction: c0 5.0, c1 9.0, c2 2.0, c3 unrated turn, c4 7.0, c5 9.0 (tie with c1), c6 failed, c7 1.0
    return [traj(0, [4, 6]), traj(1, [9, 9], True), traj(2, [2, 2]), traj(3, [10, None], True), traj(4, [7, 7]),
            traj(5, [8, 10], True), traj(6, [10, 10], status="failed"), traj(7, [1, 1])]


def test_top_and_bottom_k_by_satisfaction(pool):
    sel = select(pool, top_k=3, bottom_k=2)
    assert [t.id for t in sel.top] == ["c001", "c005", "c004"]  # tie 9.0: lower index first
    assert [t.id for t in sel.bottom] == ["c002", "c007"]
    assert sel.n_total == 8 and sel.n_eligible == 6 and sel.excluded == ["c003", "c006"]
    assert not sel.clipped
    assert sel.role_of("c001") == "top" and sel.role_of("c007") == "bottom"
    assert sel.role_of("c003") == "excluded" and sel.role_of("c000") == "none"
    assert [t.id for t in rank(pool)] == ["c001", "c005", "c004", "c000", "c002", "c007"]
    assert pool[3].satisfaction == 10.0 and not pool[3].complete  # unrated turn: never selected


def test_k_larger_than_eligible(pool):
    with pytest.raises(ConfigError, match=r"top_k=5 \+ bottom_k=3 exceeds the 6 eligible trajectories \(8 collected, "
                                          r"2 excluded"):
        select(pool, top_k=5, bottom_k=3)
    sel = select(pool, top_k=5, bottom_k=3, strict=False)
    assert sel.clipped and len(sel.top) + len(sel.bottom) == 6 and sel.top and sel.bottom
    assert not ({t.id for t in sel.top} & {t.id for t in sel.bottom})
    sel = select(pool[:1], top_k=1, bottom_k=1, strict=False)
    assert sel.clipped and len(sel.top) == 1 and sel.bottom == []
    with pytest.raises(ConfigError, match="top_k"):
        select(pool, top_k=0)
    with pytest.raises(ConfigError, match="bottom_k"):
        select(pool, top_k=1, bottom_k=-1)


def test_sft_rows_are_assistant_turns_of_top_k(pool):
    sel = select(pool, top_k=2)
    rows = sft_rows(sel)
    assert len(rows) == 2 * 2  # two trajectories x two assistant turns
    first = rows[0]
    assert set(first) == {"prompt", "completion", "trajectory_id"}
    assert first["prompt"][0] == {"role": "system", "content": ASSISTANT_SYSTEM_PROMPT}
    assert first["prompt"][-1]["role"] == "user"
    assert first["completion"] == [{"role": "assistant", "content": "reply 1.0"}]
    second = rows[1]
    assert [m["role"] for m in second["prompt"]] == ["system", "user", "assistant", "user"]
    assert second["completion"][0]["content"] == "reply 1.1"


def test_kto_dataset_shape(pool):
    sel = select(pool, top_k=2, bottom_k=2)
    rows = kto_rows(sel)
    assert len(rows) == 8
    assert [r["label"] for r in rows] == [True] * 4 + [False] * 4
    assert {r["trajectory_id"] for r in rows if r["label"]} == {"c001", "c005"}
    assert {r["trajectory_id"] for r in rows if not r["label"]} == {"c002", "c007"}
    for r in rows:
        assert set(r) == {"prompt", "completion", "label", "trajectory_id"}
        assert isinstance(r["prompt"], list) and r["prompt"][-1]["role"] == "user"
        assert len(r["completion"]) == 1 and r["completion"][0]["role"] == "assistant"
    # the shape trl's KTOTrainer takes (conversational prompt / completion / bool label)
    from datasets import Dataset

    ds = Dataset.from_list([{k: r[k] for k in ("prompt", "completion", "label")} for r in rows])
    assert ds.features["label"].dtype == "bool" and len(ds) == 8
    with pytest.raises(ConfigError, match="KTO needs desirable and undesirable"):
        kto_rows(select(pool, top_k=2, bottom_k=0))
    assert training_rows(sel, "sft") == sft_rows(sel)
    with pytest.raises(ConfigError, match="method"):
        training_rows(sel, "dpo")
