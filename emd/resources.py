"""Where emd's evaluation data lives: inside the installed package, or in the checkout.

``evaluation/`` at the repository root holds what emd measures (MASK and DeceptionBench items, judge
prompts and their validation cases, lm-eval tasks, interaction scenarios). A wheel ships a copy of it
as ``emd/_evaluation/`` (``setup.py`` copies it at build time), so an installed emd finds its data
wherever it is installed; a checkout or an editable install reads ``evaluation/`` directly, so edits
there take effect without a rebuild.
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path

from emd.errors import DataError

__all__ = ["SHIPPED_NAME", "evaluation_path", "evaluation_root"]

SHIPPED_NAME = "_evaluation"
"""Folder name of the evaluation data inside the installed ``emd`` package."""

# A file every copy of emd's evaluation data has: it tells emd's folder from an unrelated
# ``evaluation`` folder that might sit beside the package (e.g. in site-packages).
_MARKER = ("mask", "VERSION")


def _candidates() -> list[Path]:
    # A real directory is needed (lm-eval's include_path, glob, open), which every pip install gives.
    shipped = Path(str(resources.files("emd") / SHIPPED_NAME))
    checkout = Path(__file__).resolve().parent.parent / "evaluation"
    return [shipped, checkout]


@functools.lru_cache(maxsize=1)
def evaluation_root() -> Path:
    """The evaluation data folder: the installed package's copy first, else the checkout's ``evaluation/``.

    Raises DataError naming both places when neither holds emd's evaluation data.
    """
    candidates = _candidates()
    for root in candidates:
        if root.joinpath(*_MARKER).is_file():
            return root
    raise DataError(
        "emd's evaluation data was not found; looked for "
        + " and ".join(str(c / Path(*_MARKER)) for c in candidates)
        + ". Install emd from a wheel built by its setup.py (which ships emd/_evaluation/) or run it from a "
        "checkout that has evaluation/ at the repository root"
    )


def evaluation_path(*parts: str) -> Path:
    """Path of ``evaluation/<parts...>`` (e.g. ``evaluation_path("mask", "VERSION")``); the root if no parts.

    The path is not checked for existence: callers report a missing file with their own context.
    """
    return evaluation_root().joinpath(*parts)
