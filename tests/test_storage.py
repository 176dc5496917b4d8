"""emd/storage.py: the cache folder, the one canonical digest, and sealed entries that refuse to lie."""

from __future__ import annotations

import hashlib
import json
import logging
import os

import pytest

from emd import storage


def test_cache_dir_expands_home_and_is_created(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EMD_CACHE_DIR", "~/my-cache")
    d = storage.cache_dir()
    assert d == tmp_path / "my-cache" and d.is_dir()
    assert storage.cache_dir("references") == d / "references" and (d / "references").is_dir()
    monkeypatch.delenv("EMD_CACHE_DIR")
    assert storage.cache_dir() == tmp_path / ".cache" / "emd"


def test_every_cache_folder_lookup_agrees(tmp_path, monkeypatch):
    from emd import references
    from emd.judges.cache import default_cache_path
    from emd.models import cache_dir

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EMD_CACHE_DIR", "~/c")
    assert cache_dir() == storage.cache_dir() == tmp_path / "c"
    assert references.references_dir() == tmp_path / "c" / "references"
    assert default_cache_path() == tmp_path / "c" / "judge_cache.sqlite"


def test_canonical_json_is_sorted_compact_and_total():
    a = {"b": [1, 2.5, None], "a": {"y": "é", "x": True}, "p": storage.Path("/x")}
    assert storage.canonical_json(a) == '{"a":{"x":true,"y":"é"},"b":[1,2.5,null],"p":"/x"}'
    assert storage.digest(a) == storage.digest(dict(reversed(list(a.items()))))
    assert storage.digest({"a": 1}) != storage.digest({"a": 2})


def test_dataset_digest_is_the_storage_digest():
    from emd.data.mixing import dataset_digest

    rows = [{"messages": [{"role": "user", "content": "héllo"}], "id": "r1"}]
    assert dataset_digest(rows) == storage.digest(rows)


def test_references_content_key_keeps_its_name():
    from emd import references

    assert references.content_key({"a": 1}) == storage.digest({"schema": references.SCHEMA, "a": 1})


def test_folder_digest_covers_names_and_content(tmp_path):
    d = tmp_path / "f"
    (d / "sub").mkdir(parents=True)
    (d / "a.txt").write_text("one")
    (d / "sub" / "b.bin").write_bytes(b"\x00\x01")
    first = storage.folder_digest(d)
    os.utime(d / "a.txt", (1, 1))
    assert storage.folder_digest(d) == first  # times are not content
    (d / "a.txt").write_text("two")
    assert storage.folder_digest(d) != first
    (d / "a.txt").write_text("one")
    assert storage.folder_digest(d) == first
    (d / "sub" / "b.bin").rename(d / "b.bin")
    assert storage.folder_digest(d) != first  # the relative name counts
    assert storage.file_digest(d / "a.txt") == hashlib.sha256(b"one").hexdigest()


def _entry(tmp_path):
    with storage.atomic_dir(tmp_path / "entry") as tmp:
        (tmp / "result.json").write_text(json.dumps({"honesty": 80.0}))
        (tmp / "adapter").mkdir()
        (tmp / "adapter" / "w.bin").write_bytes(b"weights" * 100)
        storage.seal(tmp, kind="test")
    return tmp_path / "entry"


def test_sealed_entry_round_trip(tmp_path):
    p = _entry(tmp_path)
    assert storage.read_manifest(p)["kind"] == "test"
    assert storage.check_seal(p) is None
    assert storage.open_sealed(p) == p


@pytest.mark.parametrize("damage", ["edit", "truncate", "extra", "missing", "no-manifest"])
def test_damaged_entry_is_a_miss_and_moved_aside(tmp_path, caplog, damage):
    p = _entry(tmp_path)
    if damage == "edit":  # still valid JSON, same size: only the digest can tell
        (p / "result.json").write_text(json.dumps({"honesty": 12.34}))
    elif damage == "truncate":
        (p / "adapter" / "w.bin").write_bytes(b"weights")
    elif damage == "extra":
        (p / "stray.txt").write_text("?")
    elif damage == "missing":
        (p / "adapter" / "w.bin").unlink()
    else:
        (p / storage.MANIFEST).unlink()
    before = sorted(x.relative_to(p).as_posix() for x in p.rglob("*"))
    with caplog.at_level(logging.WARNING, logger="emd.storage"):
        assert storage.open_sealed(p, what="test entry") is None
    assert not p.exists()
    aside = [x for x in tmp_path.iterdir() if x.name.startswith("entry.corrupt-")]
    assert len(aside) == 1
    assert sorted(x.relative_to(aside[0]).as_posix() for x in aside[0].rglob("*")) == before  # nothing lost
    msg = caplog.text
    assert "test entry" in msg and str(p) in msg and str(aside[0]) in msg
    if damage in ("edit", "truncate"):
        assert ("result.json" if damage == "edit" else "w.bin") in msg


def test_remove_instead_of_set_aside(tmp_path, caplog):
    p = _entry(tmp_path)
    (p / "result.json").write_text("{}")
    with caplog.at_level(logging.WARNING, logger="emd.storage"):
        assert storage.open_sealed(p, what="big entry", remove=True) is None
    assert not p.exists() and list(tmp_path.iterdir()) == []
    assert "removed" in caplog.text and str(p) in caplog.text


def test_stamp_skips_hashing_until_a_file_changes(tmp_path):
    p = _entry(tmp_path)
    assert storage.check_seal(p, trust_stamp=True) is None
    w = p / "adapter" / "w.bin"
    data = bytearray(w.read_bytes())
    data[0] ^= 0xFF  # same size, new mtime
    w.write_bytes(bytes(data))
    os.utime(w, ns=(w.stat().st_atime_ns, w.stat().st_mtime_ns + 10_000_000))
    reason = storage.check_seal(p, trust_stamp=True)
    assert reason is not None and "w.bin" in reason


def test_set_aside_never_overwrites(tmp_path):
    f = tmp_path / "x.sqlite"
    f.write_text("1")
    a = storage.set_aside(f)
    f.write_text("2")
    b = storage.set_aside(f)
    assert a != b and a.read_text() == "1" and b.read_text() == "2" and ".corrupt-" in b.name
