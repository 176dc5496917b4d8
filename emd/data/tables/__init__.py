"""The embedded generators' tables: YAML files beside this module, shipped as package data.

Each ``<name>.yaml`` holds the literal sentences and word lists of ``emd.data.<name>``; the module
keeps only the short code that combines them into rows. Row order and content depend on the order
of every list here, so edits change the data digest (and every cached result keyed on it).
"""

from __future__ import annotations

import functools
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from emd.errors import DataError

__all__ = ["load_table", "table_path"]


def table_path(name: str) -> Path:
    """The path of table ``name`` (``emd/data/tables/<name>.yaml``) inside the installed package."""
    return Path(str(resources.files(__name__) / f"{name}.yaml"))


@functools.lru_cache(maxsize=None)
def load_table(name: str) -> dict[str, Any]:
    """The parsed table ``name`` (a mapping), read once per process; DataError if it is missing or malformed."""
    path = table_path(name)
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise DataError(f"data table {name!r} not found at {path}; shipped tables: {', '.join(known) or 'none'}")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)
    if not isinstance(data, dict):
        raise DataError(f"data table {path} must hold a mapping at the top level, got {type(data).__name__}")
    return data
