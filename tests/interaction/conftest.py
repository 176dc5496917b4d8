"""Fixtures for the interaction tests: the shared rating rule, a real local user-simulator server."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.chat_server import running

SERVER = Path(__file__).with_name("user_server.py")


@pytest.fixture(scope="session")
def rule():
    """The scripted simulator's rating rule (loads MiniLM once per session)."""
    from emd.interaction.rating import RatingRule

    return RatingRule()


@pytest.fixture(scope="session")
def scenarios():
    """The shipped scenario set."""
    from emd.interaction.scenarios import load_scenarios

    return load_scenarios()


@pytest.fixture(scope="session")
def user_server():
    """tests/interaction/user_server.py as a real process on 127.0.0.1 (a free port)."""
    with running(SERVER) as handle:
        yield handle
