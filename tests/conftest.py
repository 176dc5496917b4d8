"""Shared fixtures: one converted embedded model per machine, isolated caches and MLflow stores per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parent.parent

if os.environ.get("PYTEST_XDIST_WORKER"):  # `make test` runs two test processes: one torch thread each
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def embedded_model():
    """The embedded SmolLM2 (converted once into the user's cache; ~40 s the first time, ~5 s after)."""
    import torch

    from emd.models import load_model

    torch.manual_seed(0)
    return load_model("embedded:smollm2")


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A fresh EMD_CACHE_DIR whose models/ points at the real model cache (conversion is not retested)."""
    from emd.models import cache_dir

    real_models = cache_dir() / "models"
    real_models.mkdir(parents=True, exist_ok=True)
    d = tmp_path / "cache"
    d.mkdir()
    (d / "models").symlink_to(real_models, target_is_directory=True)
    monkeypatch.setenv("EMD_CACHE_DIR", str(d))
    return d


@pytest.fixture
def tracking_uri(tmp_path, monkeypatch):
    """A private sqlite MLflow store (artifacts under tmp_path/mlruns) and a cwd of its own."""
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


JUDGE_SERVER = Path(__file__).with_name("judges") / "openai_server.py"


@pytest.fixture(scope="session")
def _judge_server_process():
    """tests/judges/openai_server.py as a real process on 127.0.0.1, one per test session."""
    from tests.chat_server import running

    with running(JUDGE_SERVER) as handle:
        yield handle


@pytest.fixture
def server(_judge_server_process, monkeypatch):
    """The local OpenAI-compatible judge server, counters and faults reset; OPENAI_BASE_URL points at it."""
    _judge_server_process.control(reset=True)
    monkeypatch.setenv("OPENAI_BASE_URL", _judge_server_process.base_url)
    return _judge_server_process
