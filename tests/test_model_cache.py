"""The converted-model cache (emd/models.py): a damaged weights folder is never loaded, it converts again."""

from __future__ import annotations

import json
import logging

import pytest

from emd import storage
from emd.models import _usable_conversion, convert_gguf, embedded_gguf_path


def _folder(path, seal=True):
    import torch
    from safetensors.torch import save_file

    path.mkdir(parents=True)
    save_file({"w": torch.arange(4096, dtype=torch.float32)}, str(path / "model.safetensors"))
    (path / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (path / "emd_conversion.json").write_text(json.dumps({"source": "x.gguf", "sha256_16": "0" * 16}))
    if seal:
        storage.seal(path)
    return path


def _truncate(path):
    w = path / "model.safetensors"
    with open(w, "r+b") as f:
        f.truncate(w.stat().st_size // 2)


def test_sealed_conversion_is_used(tmp_path):
    p = _folder(tmp_path / "m")
    assert _usable_conversion(p) and _usable_conversion(p)  # the second check trusts the stamp


@pytest.mark.parametrize("sealed", [True, False])
def test_truncated_weights_are_removed_with_a_warning(tmp_path, caplog, sealed):
    p = _folder(tmp_path / "m", seal=sealed)
    _truncate(p)
    with caplog.at_level(logging.WARNING, logger="emd.storage"):
        assert not _usable_conversion(p)
    assert not p.exists() and "converted model" in caplog.text and str(p) in caplog.text


def test_edited_weights_same_size_are_caught(tmp_path, caplog):
    p = _folder(tmp_path / "m")
    w = p / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 0x55
    w.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="emd.storage"):
        assert not _usable_conversion(p)
    assert "model.safetensors" in caplog.text


def test_folder_from_before_manifests_is_adopted_when_whole(tmp_path):
    p = _folder(tmp_path / "m", seal=False)
    assert _usable_conversion(p)
    assert storage.read_manifest(p)["adopted"] is True and storage.check_seal(p) is None


@pytest.mark.slow
def test_truncated_converted_weights_are_converted_again(tmp_path, caplog):
    gguf = embedded_gguf_path()
    out = convert_gguf(gguf, out_dir=tmp_path / "m")
    assert storage.check_seal(out) is None
    size = (out / "model.safetensors").stat().st_size
    _truncate(out)
    with caplog.at_level(logging.WARNING, logger="emd.storage"):
        again = convert_gguf(gguf, out_dir=tmp_path / "m")
    assert again == out and str(out) in caplog.text
    assert (out / "model.safetensors").stat().st_size == size and storage.check_seal(out) is None
