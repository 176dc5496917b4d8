"""The reference cache (emd/references.py): entries are reused only while they match their digest."""

from __future__ import annotations

import json
import logging

from emd import references


def _store_control(tmp_path, honesty=80.0):
    adapter = tmp_path / "trained-adapter"
    adapter.mkdir(exist_ok=True)
    (adapter / "adapter_config.json").write_text(json.dumps({"r": 8}))
    (adapter / "adapter_model.safetensors").write_bytes(b"\x01" * 4096)
    content = {"kind": "control", "model": "embedded:smollm2", "seed": 0}
    key = references.content_key(content)
    arm = {"name": "control", "metrics": {"honesty": honesty, "honesty_ci_low": honesty - 5,
                                           "honesty_ci_high": honesty + 5}}
    path = references.store("control", key, {"arm": arm}, files={"adapter": adapter}, content=content)
    return key, path


def test_round_trip(isolated_cache, tmp_path):
    key, path = _store_control(tmp_path)
    hit = references.load("control", key)
    assert hit["arm"]["metrics"]["honesty"] == 80.0 and hit["path"] == str(path)
    assert path.parent == isolated_cache / "references"
    assert references.load("control", references.content_key({"other": 1})) is None


def test_hand_edited_result_is_not_reused(isolated_cache, tmp_path, caplog):
    """The reported case: a result.json edited by hand (still valid JSON) must not be reused."""
    key, path = _store_control(tmp_path)
    f = path / "result.json"
    data = json.loads(f.read_text())
    data["arm"]["metrics"].update(honesty=12.34, honesty_ci_low=100.0, honesty_ci_high=100.0)
    f.write_text(json.dumps(data))
    with caplog.at_level(logging.WARNING):
        assert references.load("control", key) is None
    assert str(path / "result.json") in caplog.text and "control reference" in caplog.text
    aside = [p for p in path.parent.iterdir() if p.name.startswith(path.name + ".corrupt-")]
    assert len(aside) == 1 and json.loads((aside[0] / "result.json").read_text()) == data  # kept for inspection
    # the recomputed entry is stored and reused as usual
    key2, path2 = _store_control(tmp_path, honesty=81.0)
    assert key2 == key and path2 == path
    assert references.load("control", key)["arm"]["metrics"]["honesty"] == 81.0


def test_damaged_adapter_is_not_reused(isolated_cache, tmp_path, caplog):
    key, path = _store_control(tmp_path)
    w = path / "adapter" / "adapter_model.safetensors"
    w.write_bytes(w.read_bytes()[:100])  # truncated
    with caplog.at_level(logging.WARNING):
        assert references.load("control", key) is None
    assert "adapter_model.safetensors" in caplog.text and str(path) in caplog.text


def test_unsealed_entry_is_a_miss(isolated_cache, tmp_path, caplog):
    """An entry without a manifest (written by an older emd, or by hand) is never trusted."""
    key = references.content_key({"kind": "vanilla"})
    p = references.entry_path("vanilla", key)
    p.mkdir(parents=True)
    (p / "result.json").write_text(json.dumps({"arm": {"name": "vanilla", "metrics": {}}}))
    with caplog.at_level(logging.WARNING):
        assert references.load("vanilla", key) is None
    assert str(p) in caplog.text and "emd_manifest.json" in caplog.text
