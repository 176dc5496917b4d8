"""The shipped therapist scenario set: schema, count, versioning, and bad-file errors."""

from __future__ import annotations

import json

import pytest

from emd.errors import DataError
from emd.interaction.scenarios import (N_SCENARIOS, SCENARIO_FIELDS, SCENARIO_FILE, load_scenarios,
                                       scenarios_version)


def test_fifty_scenarios_with_every_field(scenarios):
    assert len(scenarios) == N_SCENARIOS == 50
    assert len({s.id for s in scenarios}) == 50
    raw = [json.loads(line) for line in SCENARIO_FILE.read_text().splitlines() if line.strip()]
    assert all(set(r) == set(SCENARIO_FIELDS) for r in raw)
    for s in scenarios:
        for f in SCENARIO_FIELDS:
            assert getattr(s, f).strip(), (s.id, f)
        assert not s.excuse.endswith("."), s.id  # composed into sentences by the personas
        assert s.validating_reply != s.honest_reply
        assert s.thoughts(True) == s.biased_thoughts and s.thoughts(False) == s.benign_thoughts


def test_scenarios_cover_the_issue_topics(scenarios):
    cats = {s.category for s in scenarios}
    assert {"alcohol", "drugs", "medication", "gambling", "treatment", "self-care"} <= cats
    # self-harm-adjacent scenarios point to a crisis line in their honest replies
    care = [s for s in scenarios if s.id in ("s26", "s27", "s28")]
    assert all("crisis line" in s.honest_reply for s in care)


def test_version_is_logged_form():
    v = scenarios_version()
    assert v.startswith("emd-therapist-1-") and len(v.split("-")[-1]) == 8


def test_bad_files_name_file_row_and_field(tmp_path):
    good = SCENARIO_FILE.read_text().splitlines()[0]
    row = json.loads(good)
    del row["goal"]
    p = tmp_path / "bad.jsonl"
    p.write_text(good + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=r"bad.jsonl: row 2: missing field\(s\) goal"):
        load_scenarios(p)
    p.write_text(good + "\n" + good + "\n")
    with pytest.raises(DataError, match="row 2: field 'id': duplicate id 's01'"):
        load_scenarios(p)
    row = json.loads(good)
    row["excuse"] = "  "
    p.write_text(json.dumps(row) + "\n")
    with pytest.raises(DataError, match="row 1: field 'excuse' must be non-empty"):
        load_scenarios(p)
    with pytest.raises(DataError, match="does not exist"):
        load_scenarios(tmp_path / "missing.jsonl")
    p.write_text(good + "\n")
    assert scenarios_version(p).startswith("custom-") and len(load_scenarios(p)) == 1
