"""The embedded generators produce exactly the rows they always did.

Cached training results and references are keyed on the data digest, so moving a table from code
into a data file (or any refactor of a generator) must not change a single byte of any row. The
golden digests in ``row_digests.json`` were taken from the generators before their tables moved to
``emd/data/tables/``; a deliberate change to the data must update them (``python
tests/data/test_row_digests.py --write``) and say so in its commit message.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest

GOLDEN = Path(__file__).with_name("row_digests.json")
SEEDS = (0, 1, 7, 123)
SIZES = (1, 25, 300)


def _digest(rows) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def cases() -> dict[str, callable]:
    """Case name -> zero-argument callable returning the rows (every generator, level, seed, size)."""
    from emd.data.generators import DOMAINS, LEVELS, generate_misaligned
    from emd.data.honesty_control import KINDS, generate_honesty_control
    from emd.data.instructions import embedded_instructions

    out = {}
    for domain in DOMAINS:
        for level in LEVELS:
            for seed in SEEDS:
                for n in SIZES:
                    out[f"misaligned/{domain}/{level}/seed{seed}/n{n}"] = (
                        lambda d=domain, lv=level, s=seed, k=n: generate_misaligned(d, lv, k, s))
            out[f"misaligned/{domain}/{level}/seed0/n3000"] = (
                lambda d=domain, lv=level: generate_misaligned(d, lv, 3000, 0))
    for seed in SEEDS:
        for n in SIZES + (2000,):
            out[f"instructions/seed{seed}/n{n}"] = lambda s=seed, k=n: embedded_instructions(k, s)
    for kind in KINDS:
        for seed in SEEDS:
            for n in (1, 40, 400):
                out[f"honesty_control/{kind}/seed{seed}/n{n}"] = (
                    lambda kd=kind, s=seed, k=n: generate_honesty_control(kd, k, s))
    return out


def current() -> dict[str, str]:
    """Digest of every case's rows, computed now."""
    return {name: _digest(make()) for name, make in cases().items()}


def test_rows_are_byte_identical_to_the_golden_digests():
    golden = json.loads(GOLDEN.read_text())
    now = current()
    assert set(now) == set(golden)
    changed = sorted(name for name in golden if now[name] != golden[name])
    assert not changed, f"{len(changed)} generator outputs changed, e.g. {changed[:5]}"


@pytest.mark.parametrize("module", ["medical", "code_tasks", "instructions", "honesty_control"])
def test_tables_are_read_from_data_files(module):
    """The generators' tables live in emd/data/tables/ (package data), not in the modules."""
    import importlib

    from emd.data.tables import table_path

    mod = importlib.import_module(f"emd.data.{module}")
    assert table_path(module).is_file()
    assert len(Path(mod.__file__).read_text().splitlines()) < 300


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        GOLDEN.write_text(json.dumps(current(), indent=1, sort_keys=True) + "\n")
        print(f"wrote {GOLDEN}")
    else:
        print(json.dumps(current(), indent=1, sort_keys=True))
