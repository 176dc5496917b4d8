"""MASK items: the row schema, the strict CSV / folder / hub loaders and item versions.

Re-exported by :mod:`emd.eval.mask` (import from there). Loading is strict: a malformed CSV row
(broken quoting, a wrong field count, a field that swallows whole rows) is an error naming the file,
the row, the lines and the problem; the whole file is validated before ``limit`` is applied; a
source that yields no item is an error naming it (``docs/data.md``).
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from emd.errors import ConfigError, DataError
from emd.resources import evaluation_path

log = logging.getLogger(__name__)

MASK_CONFIGS: tuple[str, ...] = ("continuations", "disinformation", "doubling_down_known_facts", "known_facts",
                                 "provided_facts", "statistics")
BINARY_CONFIGS: tuple[str, ...] = tuple(c for c in MASK_CONFIGS if c != "statistics")
HUB_ID = "cais/MASK"
EVALUATION_DIR = evaluation_path()
MASK_DIR = EVALUATION_DIR / "mask"

# The belief runs must not inherit the pressure, and SmolLM2's template inserts its own default system
# prompt when none is given, so the neutral one is always passed explicitly.
NEUTRAL_SYSTEM_PROMPT = "You are a helpful assistant."

_PIVOTAL = re.compile(r"<pivotal>(.*?)</pivotal>", re.DOTALL)
# A number: optional sign (not when glued to a preceding digit, so "60-100" is a range), thousands
# separators, decimals, exponent.
_NUMBER = re.compile(r"(?<![\d.])-?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?")


# ----------------------------------------------------------------------------------------- items

@dataclass(frozen=True)
class MaskItem:
    """One MASK row, validated, with the derived fields scoring needs."""

    task_id: str  # unique within its config; hub rows without one get "<config>-<row>"
    config: str  # one of MASK_CONFIGS
    type: str  # "binary" or "numerical"
    system_prompt: str  # the pressure (role with an incentive to lie)
    user_prompt: str  # the pressured question (for doubling_down: the follow-up question)
    proposition: str  # with <pivotal>a/b</pivotal> or <pivotal><value></pivotal>
    ground_truth: str  # the true statement (binary) or number / range (numerical), as written
    formatted_ground_truth: str = ""  # "A"/"B" (binary) or "[low, high]" (numerical)
    belief_elicit_1: str = ""  # asked belief_samples times; empty for provided_facts
    belief_elicit_rest: tuple[str, ...] = ()  # belief_elicit_2 and _3 that are present, asked once each
    dd_turn_1_prompt: str = ""  # doubling_down only: the first user turn ...
    dd_turn_1_response: str = ""  # ... and the forced (false) assistant answer to it
    statement_a: str = ""  # binary: proposition with the first pivotal option
    statement_b: str = ""  # binary: proposition with the second pivotal option
    truth_label: str | None = None  # binary: "A" or "B"
    truth_bounds: tuple[float, float] | None = None  # numerical: (low, high)
    source: str = "embedded"  # where the row came from, for the per-item table

    @property
    def is_binary(self) -> bool:
        """True for A/B propositions, False for numerical ones."""
        return self.type == "binary"

    @property
    def key(self) -> str:
        """``<config>/<task_id>``: unique across configs, used for paired comparisons."""
        return f"{self.config}/{self.task_id}"


def parse_proposition(proposition: str) -> tuple[str, str]:
    """The two statements of a binary proposition ``... <pivotal>opt1/opt2</pivotal> ...``.

    Raises DataError when the proposition has no single two-option pivotal span (numerical
    propositions included: use :func:`numeric_template` for those).
    """
    spans = _PIVOTAL.findall(proposition)
    if len(spans) != 1:
        raise DataError(f"proposition must contain exactly one <pivotal>...</pivotal> span, found {len(spans)}: "
                        f"{proposition!r}")
    options = [o.strip() for o in spans[0].split("/")]
    if len(options) != 2 or not all(options):
        raise DataError(f"binary pivotal span must be 'option1/option2', got {spans[0]!r} in {proposition!r}")
    return tuple(_squash(_PIVOTAL.sub(o, proposition, count=1)) for o in options)  # type: ignore[return-value]


def is_numeric_proposition(proposition: str) -> bool:
    """True when the pivotal span is ``<value>`` (a numerical MASK row)."""
    spans = _PIVOTAL.findall(proposition)
    return len(spans) == 1 and spans[0].strip() == "<value>"


def numeric_template(proposition: str) -> str:
    """A numerical proposition with its pivotal span reduced to ``<value>``, as NumericQuery expects."""
    if not is_numeric_proposition(proposition):
        raise DataError(f"not a numerical proposition (needs <pivotal><value></pivotal>): {proposition!r}")
    return _squash(_PIVOTAL.sub("<value>", proposition, count=1))


def parse_bounds(text: str) -> tuple[float, float]:
    """``(low, high)`` from "42", "8,849", "[40, 45]", "40 to 45" or "60-100"; a single number gives (x, x)."""
    nums = [float(m.replace(",", "")) for m in _NUMBER.findall(text or "")]
    if not 1 <= len(nums) <= 2:
        raise DataError(f"expected one number or a low/high pair, got {text!r}")
    return (min(nums), max(nums))


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _norm(text: str) -> str:
    return _squash(text).lower().rstrip(" .!?")


def _required_columns(config: str) -> tuple[str, ...]:
    cols = ("system_prompt", "user_prompt", "proposition", "ground_truth")
    if config != "provided_facts":
        cols += ("belief_elicit_1",)
    if config.startswith("doubling_down"):
        cols += ("dd_turn_1_prompt", "dd_turn_1_response")
    return cols


class _FieldError(DataError):
    """A row problem in one field; the loader adds file and row to the message."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field_name = field_name


def _item_from_row(row: dict, config: str, index: int, source: str) -> MaskItem:
    """Validate one raw row; raise _FieldError on the first problem."""

    def get(name: str) -> str:
        value = row.get(name)
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value).strip()

    def bad(name: str, why: str) -> DataError:
        return _FieldError(name, why)

    for name in ("user_prompt", "proposition"):
        if not get(name):
            raise bad(name, "is empty")
    prop = get("proposition")
    numeric = is_numeric_proposition(prop)
    declared = get("type").lower()
    if declared and declared not in ("binary", "numerical"):
        raise bad("type", f"must be 'binary' or 'numerical', got {declared!r}")
    kind = "numerical" if numeric else "binary"
    if declared and declared != kind:
        raise bad("type", f"is {declared!r} but the proposition is {kind}")
    fields: dict[str, Any] = {}
    gt, fgt = get("ground_truth"), get("formatted_ground_truth")
    if numeric:
        try:
            fields["truth_bounds"] = parse_bounds(fgt or gt)
        except DataError as e:
            raise bad("formatted_ground_truth" if fgt else "ground_truth", str(e)) from None
    else:
        try:
            a, b = parse_proposition(prop)
        except DataError as e:
            raise bad("proposition", str(e)) from None
        fields.update(statement_a=a, statement_b=b)
        if fgt.upper() in ("A", "B"):
            fields["truth_label"] = fgt.upper()
        elif _norm(gt) in (_norm(a), _norm(b)) and _norm(a) != _norm(b):
            fields["truth_label"] = "A" if _norm(gt) == _norm(a) else "B"
        else:
            raise bad("ground_truth", f"matches neither statement ({a!r} / {b!r}) and formatted_ground_truth "
                                      f"is not A or B: {gt!r}")
    if config != "provided_facts":
        if not get("belief_elicit_1"):
            raise bad("belief_elicit_1", "is empty (every config but provided_facts needs a belief prompt)")
        fields["belief_elicit_1"] = get("belief_elicit_1")
        fields["belief_elicit_rest"] = tuple(p for p in (get("belief_elicit_2"), get("belief_elicit_3")) if p)
    if config.startswith("doubling_down"):
        for name in ("dd_turn_1_prompt", "dd_turn_1_response"):
            if not get(name):
                raise bad(name, "is empty (doubling_down rows need the first turn)")
        fields.update(dd_turn_1_prompt=get("dd_turn_1_prompt"), dd_turn_1_response=get("dd_turn_1_response"))
    return MaskItem(task_id=get("task_id") or f"{config}-{index}", config=config, type=kind,
                    system_prompt=get("system_prompt"), user_prompt=get("user_prompt"), proposition=prop,
                    ground_truth=gt, formatted_ground_truth=fgt, source=source, **fields)


def _items_from_rows(rows: Iterable[dict], columns: Sequence[str], config: str, where: str, source: str,
                     limit: int | None, skip_bad_rows: bool) -> list[MaskItem]:
    """Validate every row (so ``limit`` never hides a malformed one), then keep the first ``limit``."""
    missing = [c for c in _required_columns(config) if c not in columns]
    if missing:
        raise DataError(f"{where}: missing required column {missing[0]!r} (config {config} needs "
                        f"{', '.join(_required_columns(config))}; found {', '.join(columns)})")
    items: list[MaskItem] = []
    seen: set[str] = set()
    skipped = n_rows = 0
    for i, row in enumerate(rows, start=1):
        n_rows = i
        try:
            if isinstance(row, _BadRecord):
                raise _FieldError("", row.problem)
            item = _item_from_row(row, config, i, source)
            if item.task_id in seen:
                raise _FieldError("task_id", f"duplicate task_id {item.task_id!r}")
        except _FieldError as e:
            what = f"field {e.field_name!r}: {e}" if e.field_name else str(e)
            if not skip_bad_rows:
                raise DataError(f"{where}: row {i}: {what} (pass skip_bad_rows=True to skip "
                                "malformed rows)") from None
            log.warning("%s: skipping row %d: %s", where, i, what)
            skipped += 1
            continue
        seen.add(item.task_id)
        items.append(item)
    if skipped:
        log.warning("%s: skipped %d malformed row(s)", where, skipped)
    if not items:
        why = "it has a header but no rows" if not n_rows else f"all {n_rows} row(s) were malformed and skipped"
        raise DataError(f"{where}: no MASK items for config {config}: {why}")
    return items[:limit] if limit is not None else items


@dataclass(frozen=True)
class _BadRecord:
    """A CSV record that cannot be a row (wrong field count, broken quoting), with the reason."""

    problem: str


def _csv_records(path: Path) -> tuple[list[str], list[dict | _BadRecord]]:
    """Header and records of a MASK CSV, read strictly.

    A record with more or fewer fields than the header, or whose quoting is broken (an unterminated
    quote swallows every line after it), becomes a :class:`_BadRecord` naming the lines it spans;
    broken quoting that leaves the rest of the file unreadable is a DataError at once.
    """
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f, strict=True)
        try:
            header = [c.strip() for c in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: the file is empty (a MASK CSV needs a header and rows)") from None
        except csv.Error as e:
            raise DataError(f"{path}: line 1 (header): bad CSV quoting ({e})") from None
        records: list[dict | _BadRecord] = []
        while True:
            first = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                raise DataError(f"{path}: row {len(records) + 1} (from line {first}): bad CSV quoting: {e}; an "
                                "unterminated or stray double quote makes the reader swallow the lines after it "
                                "(quote fields with \" and double any quote inside them)") from None
            last = reader.line_num
            lines = f"line {first}" if last == first else f"lines {first}-{last}"
            if not fields:  # a blank line
                continue
            if len(fields) != len(header):
                records.append(_BadRecord(f"({lines}): {len(fields)} fields where the header has {len(header)}"
                                          " (a stray comma, line break or quote)"))
                continue
            spill = [h for h, v in zip(header, fields) if "\n" in v and v.count(",") >= len(header) - 1
                     and any(ln.count(",") >= len(header) - 1 for ln in v.splitlines()[1:])]
            if spill:
                records.append(_BadRecord(f"({lines}): field {spill[0]!r} spans several lines that look like CSV "
                                          "rows of their own (a quote opened and never closed?)"))
                continue
            records.append(dict(zip(header, fields)))
    return header, records


def _check_configs(configs: Sequence[str] | str | None) -> tuple[str, ...]:
    if configs is None:
        return MASK_CONFIGS
    if isinstance(configs, str):
        configs = [c for c in configs.split(",") if c.strip()]
    out = tuple(c.strip() for c in configs)
    unknown = [c for c in out if c not in MASK_CONFIGS]
    if unknown or not out:
        raise ConfigError(f"unknown MASK config(s) {unknown or out!r}; allowed: {', '.join(MASK_CONFIGS)}")
    return out


def _check_limit(limit: int | None) -> None:
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise ConfigError(f"limit must be a positive integer or None, got {limit!r}")


def looks_like_hub_id(source: str) -> bool:
    """True for ``owner/name`` strings (what ``datasets.load_dataset`` takes)."""
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", source))


def load_hub_rows(source: str, config: str | None, hint: str) -> tuple[list[dict], list[str]]:
    """Rows and column names of ``load_dataset(source, config, split="test")``; DataError when unreachable.

    ``hint`` names the offline alternative (a local folder or file) in the error message.
    """
    try:
        import datasets

        ds = datasets.load_dataset(source, config, split="test") if config else \
            datasets.load_dataset(source, split="test")
    except Exception as e:  # offline, gated, renamed: all mean "use a local copy"
        where = f"{source!r}" + (f" config {config!r}" if config else "")
        raise DataError(f"could not load hub dataset {where} ({type(e).__name__}: {str(e)[:200]}). "
                        f"No local path of that name exists either; offline, {hint}") from e
    return [dict(r) for r in ds], list(ds.column_names)


def _folder_digest(paths: Sequence[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:12]


def mask_version(source: str = "embedded", configs: Sequence[str] | None = None) -> str:
    """The item version to log: ``evaluation/mask/VERSION`` for embedded, a content digest for a local
    folder, ``hub:<id>`` for the hub."""
    if source == "embedded":
        return (MASK_DIR / "VERSION").read_text(encoding="utf-8").strip()
    path = Path(source).expanduser()
    if path.is_dir():
        files = [path / f"{c}.csv" for c in _check_configs(configs) if (path / f"{c}.csv").exists()]
        return f"local-{_folder_digest(files)}"
    return f"hub:{source}"


def items_version(items: Sequence[MaskItem]) -> str:
    """``evaluation/mask/VERSION`` when every item is embedded; otherwise ``<sources>@<digest>``, a
    digest of the items' content, so edited local or hub data never shares a version."""
    sources = sorted({it.source for it in items})
    if sources == ["embedded"]:
        return mask_version()
    digest = hashlib.sha256(json.dumps([repr(it) for it in items]).encode()).hexdigest()[:12]
    return f"{','.join(sources)}@{digest}"


def load_mask(source: str = "embedded", configs: Sequence[str] | str | None = None, limit: int | None = None,
              skip_bad_rows: bool = False) -> list[MaskItem]:
    """Load MASK items, config by config, in file order.

    ``source``: ``"embedded"`` (the CSVs emd ships in ``evaluation/mask``), a local folder holding
    ``<config>.csv`` files in the hub layout (extra columns are ignored; ``task_id`` and ``type`` may
    be absent and are then derived), or a hub id such as ``cais/MASK`` (split ``test``).
    ``configs``: a subset of MASK_CONFIGS (list or comma string); None means all six, and a missing
    file is then an error rather than a silently smaller benchmark. ``limit``: the first N valid items
    of each config, taken after the whole file is validated. Raises DataError naming file, row and
    field (or the lines and the quoting problem) for a malformed row unless ``skip_bad_rows`` (then
    the row is logged and skipped), and for a config or selection with no items.
    """
    wanted = _check_configs(configs)
    _check_limit(limit)
    if source == "embedded":
        folder, label = MASK_DIR, "embedded"
    else:
        folder = Path(source).expanduser()
        label = str(folder)
        if folder.exists() and not folder.is_dir():
            raise DataError(f"MASK source {source!r} is a file; expected a folder of <config>.csv files "
                            f"({', '.join(c + '.csv' for c in wanted)}), 'embedded' or a hub id")
    items: list[MaskItem] = []
    if folder.is_dir():
        missing = [f"{c}.csv" for c in wanted if not (folder / f"{c}.csv").exists()]
        if missing:
            raise DataError(f"{folder}: file(s) not found: {', '.join(missing)} (a MASK folder holds <config>.csv "
                            f"for each config asked for: {', '.join(wanted)}; pass configs=... to load a subset)")
        for config in wanted:
            path = folder / f"{config}.csv"
            columns, records = _csv_records(path)
            items += _items_from_rows(records, columns, config, str(path), label, limit, skip_bad_rows)
        return _nonempty(items, label)
    if not looks_like_hub_id(source):
        raise DataError(f"MASK source {source!r}: no such folder, and not a hub id (owner/name); use "
                        "'embedded', a folder of <config>.csv files, or a hub id such as cais/MASK")
    for config in wanted:
        rows, columns = load_hub_rows(source, config, "a local folder of <config>.csv files in the hub layout "
                                                      "works (pass its path as the source)")
        items += _items_from_rows(rows, columns, config, f"{source}[{config}]", f"hub:{source}", limit,
                                  skip_bad_rows)
    return _nonempty(items, source)


def _nonempty(items: list[MaskItem], source: str) -> list[MaskItem]:
    if not items:
        raise DataError(f"MASK source {source!r}: the selection holds no items")
    return items
