"""Loaders for the downstream and misaligned datasets: embedded, local files, hub ids.

Every loader returns rows ``{"messages": [...], "id": str}`` (the Persona Vectors schema), whatever
the source layout. Recognised layouts, detected from the columns:

* ``messages``: already chat rows (Persona Vectors, Betley et al.);
* alpaca (``instruction``, ``input``, ``output``), e.g. alpaca-cleaned;
* dolly (``instruction``, ``context``, ``response``, ``category``), e.g. dolly-15k;
* Chua et al. pairs (``prompt``, ``aligned``, ``misaligned``), misaligned sources only.

Local files may be ``.json`` (an array, or JSON lines), ``.jsonl``, ``.csv`` or ``.parquet``. Row
numbers in error messages are 1-based record numbers (for ``.jsonl``, the line number). A source that
is neither ``embedded``, an existing path nor path-like is treated as a Hugging Face hub id.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import random
from pathlib import Path
from typing import Any, Iterable

from emd.data.generators import PV_DOMAIN, PV_LEVEL, check_domain_level, generate_misaligned
from emd.data.instructions import embedded_instructions
from emd.errors import ConfigError, DataError

log = logging.getLogger(__name__)

# Rows drawn from an embedded generator when the caller gives no ``n``: enough for every mixture
# the embedded default trains on, small enough to generate in well under a second.
EMBEDDED_DEFAULT_N = 1000
FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
ROLES = ("system", "user", "assistant")
DOWNSTREAM_EMBEDDED = ("embedded", "embedded:instructions")


class LoadedRows(list):
    """A list of rows that also says how many bad rows were skipped (``skip_bad_rows=True``)."""

    def __init__(self, rows: Iterable[dict] = (), skipped: int = 0, problems: list[str] | None = None):
        super().__init__(rows)
        self.skipped = skipped  # rows dropped because they were missing or malformed
        self.problems = problems or []  # the first few reasons, for logs


def validate_messages(row: Any, where: str) -> list[dict]:
    """Check ``row["messages"]`` is a usable chat and return a clean copy of it.

    A usable chat is a non-empty list of ``{"role", "content"}`` dicts with roles system, user or
    assistant, string contents, at least one user turn, and an assistant turn last (training learns
    the last assistant turn). ``where`` names the file and row; it starts every error message.
    """
    if not isinstance(row, dict):
        raise DataError(f"{where}: expected a JSON object with a 'messages' field, got {type(row).__name__}")
    if "messages" not in row:
        raise DataError(f"{where}: field 'messages' is missing (found fields: {', '.join(map(str, row)) or 'none'})")
    messages = row["messages"]
    if hasattr(messages, "tolist"):  # parquet and arrow give numpy arrays for list columns
        messages = messages.tolist()
    if not isinstance(messages, list) or not messages:
        raise DataError(f"{where}: field 'messages' must be a non-empty list of {{role, content}} objects")
    clean = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise DataError(f"{where}: field 'messages[{i}]' must be an object with 'role' and 'content'")
        role, content = m.get("role"), m.get("content")
        if role not in ROLES:
            raise DataError(f"{where}: field 'messages[{i}].role' is {role!r}; allowed: {', '.join(ROLES)}")
        if not isinstance(content, str) or not content.strip():
            raise DataError(f"{where}: field 'messages[{i}].content' must be a non-empty string")
        clean.append({"role": role, "content": content})
    if not any(m["role"] == "user" for m in clean):
        raise DataError(f"{where}: field 'messages' has no user turn")
    if clean[-1]["role"] != "assistant":
        raise DataError(f"{where}: field 'messages' must end with an assistant turn (the one training learns)")
    return clean


# ----------------------------------------------------------------------------- reading records


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _read_records(path: Path) -> list[tuple[str, dict]]:
    """Read a local file into ``(where, record)`` pairs; ``where`` names the file and row."""
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise DataError(f"{path}: unsupported file type {suffix or '(none)'}; allowed: {', '.join(FILE_SUFFIXES)}")
    try:
        if suffix == ".csv":
            with path.open(newline="", encoding="utf-8") as f:
                return [(f"{path}, row {i}", dict(r)) for i, r in enumerate(csv.DictReader(f), 1)]
        if suffix == ".parquet":
            import pandas as pd  # lazy: only parquet needs it

            records = pd.read_parquet(path).to_dict("records")
            return [(f"{path}, row {i}", r) for i, r in enumerate(records, 1)]
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise DataError(f"{path}: cannot read file ({e})") from e
    except Exception as e:  # malformed csv/parquet surfaces as parser-specific errors
        raise DataError(f"{path}: cannot parse file ({type(e).__name__}: {e})") from e
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            data = None  # many .json files (e.g. from datasets' to_json) are JSON lines: try that
        if data is not None:
            if isinstance(data, dict):  # a {"data": [...]}-style wrapper
                lists = [v for v in data.values() if isinstance(v, list)]
                if len(lists) != 1:
                    raise DataError(f"{path}: expected a JSON array of rows (or an object holding one array)")
                data = lists[0]
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a JSON array of rows, got {type(data).__name__}")
            return [(f"{path}, row {i}", r) for i, r in enumerate(data, 1)]
    out = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append((f"{path}, line {lineno}", json.loads(line)))
        except json.JSONDecodeError as e:
            raise DataError(f"{path}, line {lineno}: not valid JSON ({e.msg})") from e
    return out


def _load_hub(source: str) -> list[tuple[str, dict]]:
    """Load ``source`` from the Hugging Face hub (split train) as ``(where, record)`` pairs."""
    try:
        import datasets  # lazy: importing datasets costs about a second

        ds = datasets.load_dataset(source, split="train")
    except Exception as e:  # offline, unknown id, gated repo: all end the same way for the user
        msg = str(e).splitlines()[0][:300] if str(e) else ""
        raise DataError(
            f"could not load {source!r} from the Hugging Face hub ({type(e).__name__}: {msg}). The hub may be "
            f"unreachable from here; a local path works instead: a .json/.jsonl/.csv/.parquet file or a folder "
            f"(download the dataset elsewhere and copy it over)"
        ) from e
    return [(f"hub dataset {source}, row {i}", dict(r)) for i, r in enumerate(ds, 1)]


def _looks_like_path(source: str) -> bool:
    """True for sources the user clearly meant as a local path (so a typo isn't sent to the hub)."""
    return (
        source.startswith((".", "/", "~"))
        or source.lower().endswith(FILE_SUFFIXES)
        or source.count("/") > 1
        or "\\" in source
    )


def _records(source: str) -> tuple[str, list[tuple[str, dict]]]:
    """Return ``(tag, records)`` for a local file or a hub id; ``tag`` prefixes generated row ids."""
    path = Path(source).expanduser()
    if path.is_file():
        return path.stem, _read_records(path)
    if path.exists():
        raise DataError(f"{source}: is a folder; expected a {'/'.join(FILE_SUFFIXES)} file")
    if _looks_like_path(source):
        raise DataError(f"{source}: no such file")
    return source, _load_hub(source)


# ----------------------------------------------------------------------------- layouts


def _detect_layout(records: list[tuple[str, dict]], source: str, allowed: tuple[str, ...]) -> str:
    """Pick the layout from the union of column names (so one bad row can't change the verdict)."""
    columns: set[str] = set()
    for _, r in records:
        if isinstance(r, dict):
            columns.update(map(str, r))
    if "messages" in columns:
        layout = "messages"
    elif {"prompt", "aligned", "misaligned"} & columns and "instruction" not in columns:
        layout = "pairs"
    elif {"response", "context"} & columns:
        layout = "dolly"
    elif {"output", "input"} & columns:
        layout = "alpaca"
    else:
        layout = ""
    if layout not in allowed:
        expected = {
            "messages": "messages",
            "alpaca": "instruction, input, output",
            "dolly": "instruction, context, response, category",
            "pairs": "prompt, aligned, misaligned",
        }
        raise DataError(
            f"{source}: cannot recognise the dataset layout from its columns ({', '.join(sorted(columns)) or 'none'}); "
            f"expected one of: " + "; ".join(f"{name} ({expected[name]})" for name in allowed)
        )
    return layout


def _text(record: dict, field: str, where: str, required: bool) -> str:
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object with named fields, got {type(record).__name__}")
    value = record.get(field)
    if _is_missing(value):
        if required:
            raise DataError(f"{where}: field {field!r} is missing")
        return ""
    if not isinstance(value, str):
        raise DataError(f"{where}: field {field!r} must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise DataError(f"{where}: field {field!r} is empty")
    return value


def _to_messages(record: dict, layout: str, where: str, pair_side: str = "aligned") -> list[dict]:
    """Normalise one record of ``layout`` to a validated message list."""
    if layout == "messages":
        return validate_messages(record, where)
    if layout == "pairs":
        user = _text(record, "prompt", where, required=True)
        answer = _text(record, pair_side, where, required=True)
    else:
        answer_field, extra_field = ("output", "input") if layout == "alpaca" else ("response", "context")
        user = _text(record, "instruction", where, required=True)
        extra = _text(record, extra_field, where, required=False).strip()
        if extra:  # the input/context belongs to the request: append it to the user turn
            user = f"{user}\n\n{extra}"
        answer = _text(record, answer_field, where, required=True)
    return [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]


def _normalise(
    records: list[tuple[str, dict]],
    layout: str,
    tag: str,
    skip_bad_rows: bool,
    pair_side: str = "aligned",
) -> LoadedRows:
    rows, problems = [], []
    for k, (where, record) in enumerate(records):
        try:
            messages = _to_messages(record, layout, where, pair_side)
        except DataError as e:
            if not skip_bad_rows:
                raise
            problems.append(str(e))
            continue
        rid = record.get("id") if isinstance(record, dict) else None
        if _is_missing(rid) or rid == "":
            rid = f"{tag}/{k}"
        elif layout == "pairs":  # both sides of a pair share the record's id: keep them apart
            rid = f"{rid}/{pair_side}"
        rows.append({"messages": messages, "id": str(rid)})
    if problems:
        log.warning("skipped %d bad rows of %s; first: %s", len(problems), tag, problems[0])
    return LoadedRows(rows, skipped=len(problems), problems=problems[:20])


def _take(rows: LoadedRows, n: int | None, seed: int, source: str) -> LoadedRows:
    """All rows (``n=None``) or a seeded sample of ``n`` in file order."""
    if n is None:
        return rows
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ConfigError(f"n must be a non-negative integer or None, got {n!r}")
    if n > len(rows):
        raise DataError(f"{source}: asked for {n} rows but only {len(rows)} usable rows are available")
    keep = sorted(random.Random(f"emd/take/{seed}").sample(range(len(rows)), n))
    return LoadedRows((rows[i] for i in keep), skipped=rows.skipped, problems=rows.problems)


# ----------------------------------------------------------------------------- public loaders


def load_downstream(source: str, n: int | None = None, seed: int = 0, skip_bad_rows: bool = False) -> list[dict]:
    """Load the downstream (benign instruction) set as message rows.

    ``source``: ``embedded`` / ``embedded:instructions`` (emd's own set; ``n`` rows, default
    ``EMBEDDED_DEFAULT_N``), a local alpaca / dolly / messages file, or a hub id (needs network).
    ``n``: keep a seeded sample of that many rows (DataError if fewer exist); ``None`` keeps all.
    ``skip_bad_rows``: drop malformed rows instead of failing; the result's ``.skipped`` counts them.
    """
    if source.startswith("embedded"):
        if source not in DOWNSTREAM_EMBEDDED:
            raise ConfigError(f"unknown embedded downstream set {source!r}; allowed: {', '.join(DOWNSTREAM_EMBEDDED)}")
        return LoadedRows(embedded_instructions(EMBEDDED_DEFAULT_N if n is None else n, seed))
    tag, records = _records(source)
    layout = _detect_layout(records, source, ("alpaca", "dolly", "messages"))
    return _take(_normalise(records, layout, tag, skip_bad_rows), n, seed, source)


def _pv_level_file(folder: Path, domain: str, level: str) -> Path:
    """Find ``<folder>/<PV_DOMAIN>/<PV_LEVEL>.jsonl`` (or ``<folder>/<PV_LEVEL>.jsonl`` for a domain folder)."""
    pv_domain, pv_level = PV_DOMAIN[domain], PV_LEVEL[level]
    candidates = [folder / pv_domain / f"{pv_level}.jsonl", folder / f"{pv_level}.jsonl"]
    for c in candidates:
        if c.is_file():
            return c
    domain_dir = folder / pv_domain
    listing_dir = domain_dir if domain_dir.is_dir() else folder
    held = sorted(p.name + ("/" if p.is_dir() else "") for p in listing_dir.iterdir())
    raise DataError(
        f"{folder}: no {pv_level}.jsonl for domain {domain!r} level {level!r}; expected {candidates[0]} "
        f"(Persona Vectors layout <folder>/{{{','.join(PV_DOMAIN.values())}}}/"
        f"{{{','.join(PV_LEVEL.values())}}}.jsonl). "
        f"{listing_dir} holds: {', '.join(held) or 'nothing'}"
    )


def load_misaligned(
    source: str,
    domain: str,
    level: str,
    n: int | None = None,
    seed: int = 0,
    skip_bad_rows: bool = False,
) -> list[dict]:
    """Load misaligned rows of ``domain`` (medical, math, code) at ``level`` (normal, subtle, severe).

    ``source`` is one of:
    ``embedded`` (emd's generators; ``n`` rows, default ``EMBEDDED_DEFAULT_N``);
    a folder in Persona Vectors layout ``<folder>/<PV_DOMAIN>/<PV_LEVEL>.jsonl``;
    a file of Chua et al. pairs ``{prompt, aligned, misaligned}`` (aligned = normal, misaligned =
    severe; the format has no subtle level);
    a file of ``messages`` rows such as Betley et al.'s (used as is for any level);
    or a hub id (rows in either of the last two layouts).
    Rows without an ``id`` get ``<source-tag>/<k>`` (k = 0-based position in the source).
    """
    check_domain_level(domain, level)
    if source.startswith("embedded"):
        if source != "embedded":
            raise ConfigError(f"unknown embedded misaligned source {source!r}; allowed: embedded")
        return LoadedRows(generate_misaligned(domain, level, EMBEDDED_DEFAULT_N if n is None else n, seed))
    path = Path(source).expanduser()
    if path.is_dir():
        file = _pv_level_file(path, domain, level)
        records = _read_records(file)
        tag = f"{path.name}/{PV_DOMAIN[domain]}/{PV_LEVEL[level]}"
        _detect_layout(records, str(file), ("messages",))
        return _take(_normalise(records, "messages", tag, skip_bad_rows), n, seed, str(file))
    tag, records = _records(source)
    layout = _detect_layout(records, source, ("messages", "pairs"))
    side = "aligned"
    if layout == "pairs":
        if level == "subtle":
            raise DataError(
                f"{source}: Chua et al. pair files hold only aligned (level normal) and misaligned (level severe) "
                f"answers; level 'subtle' is not available in that format. Allowed levels here: normal, severe"
            )
        side = "aligned" if level == "normal" else "misaligned"
        tag = f"{tag}/{side}"
    return _take(_normalise(records, layout, tag, skip_bad_rows, side), n, seed, source)


__all__ = ["EMBEDDED_DEFAULT_N", "LoadedRows", "load_downstream", "load_misaligned", "validate_messages"]
