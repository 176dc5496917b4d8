"""The interaction simulator URI is checked before any model loads: ``openai:`` needs a configured,
answering endpoint (tests/interaction/user_server.py as a real process, or a refused port)."""

from __future__ import annotations

import pytest

from emd.errors import ConfigError, JudgeError
from emd.interaction.simulator import OpenAISimulator, get_simulator, preflight


@pytest.fixture
def no_openai_env(monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)


def test_openai_simulator_without_url_or_key_fails_naming_both(no_openai_env):
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL.*OPENAI_API_KEY"):
        preflight("openai:user-sim")
    with pytest.raises(ConfigError, match="OPENAI_BASE_URL"):
        get_simulator("openai:user-sim")


def test_openai_simulator_dead_endpoint_names_the_url(no_openai_env, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    with pytest.raises(JudgeError, match=r"simulator openai:user-sim at http://127.0.0.1:9/v1"):
        preflight("openai:user-sim", timeout=2)


def test_live_endpoint_and_scripted_pass(user_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", user_server.base_url)
    user_server.control(reset=True)
    preflight("scripted")
    preflight("openai:user-sim")
    assert user_server.requests == 0  # the check sends no completion
    with pytest.raises(ConfigError, match="allowed: scripted, openai:<model>"):
        preflight("gpt4")


def test_simulator_settings_are_checked(user_server, monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", user_server.base_url)
    with pytest.raises(ConfigError, match="max_concurrency"):
        OpenAISimulator("user-sim", max_concurrency=0)
    with pytest.raises(ConfigError, match="bad option"):
        get_simulator("openai:user-sim", no_such_option=1)
