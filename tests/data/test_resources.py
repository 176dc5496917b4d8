"""emd.resources: the evaluation folder is found (shipped copy first, then the checkout) or named in an error."""

from __future__ import annotations

import pytest

from emd import resources
from emd.errors import DataError


@pytest.fixture
def fresh_root(monkeypatch):
    resources.evaluation_root.cache_clear()
    yield
    resources.evaluation_root.cache_clear()


def test_checkout_evaluation_folder_in_a_checkout():
    root = resources.evaluation_root()
    assert (root / "mask" / "VERSION").is_file()
    assert resources.evaluation_path("judge_prompts", "mask_binary.yaml").is_file()
    assert resources.evaluation_path() == root


def test_shipped_copy_wins_and_a_folder_without_the_marker_is_skipped(tmp_path, monkeypatch, fresh_root):
    shipped, checkout, unrelated = tmp_path / "shipped", tmp_path / "checkout", tmp_path / "evaluation"
    for d in (shipped, checkout):
        (d / "mask").mkdir(parents=True)
        (d / "mask" / "VERSION").write_text("emd-mask-1\n")
    unrelated.mkdir()  # an "evaluation" folder that is not emd's
    monkeypatch.setattr(resources, "_candidates", lambda: [unrelated, shipped, checkout])
    assert resources.evaluation_root() == shipped


def test_missing_data_names_every_place_looked(tmp_path, monkeypatch, fresh_root):
    a, b = tmp_path / "a", tmp_path / "b"
    monkeypatch.setattr(resources, "_candidates", lambda: [a, b])
    with pytest.raises(DataError, match="evaluation data was not found") as err:
        resources.evaluation_root()
    assert str(a / "mask" / "VERSION") in str(err.value) and str(b / "mask" / "VERSION") in str(err.value)
