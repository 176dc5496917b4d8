"""Hooks for emd's offline lm-eval tasks (referenced from the YAML files with ``!function utils.x``).

lm-eval loads this file by path, next to the YAML files, so it must not rely on being a package.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import datasets

HERE = Path(__file__).resolve().parent

try:
    from emd.errors import DataError
    from emd.sandbox import run_python
except ImportError:  # emd not installed: this folder sits at <repo>/evaluation/tasks
    sys.path.insert(0, str(HERE.parents[1]))
    from emd.errors import DataError
    from emd.sandbox import run_python

CODE_TIMEOUT_S = 5.0  # the tests are a few asserts on tiny inputs; anything slower is a loop
CODE_MEMORY_MB = 512


def load_jsonl(
    data_files: dict[str, str] | None = None, unsafe_code_eval: bool = False, **_metadata
) -> datasets.DatasetDict:
    """``custom_dataset`` hook: read the split files named in ``dataset_kwargs.data_files``.

    Paths are relative to this folder, not to the working directory (``datasets.load_dataset
    ("json", data_files=...)`` would resolve them against the cwd, so the tasks would only work when
    started from one place). lm-eval also passes the task metadata as keyword arguments: the key
    ``unsafe_code_eval`` (set by ``emd.eval.capability`` for ``--unsafe-code-eval``) is stamped on
    every row that has ``tests``, for :func:`process_code`; the rest is ignored.
    """
    if not isinstance(unsafe_code_eval, bool):
        raise DataError(f"task metadata unsafe_code_eval must be true or false, got {unsafe_code_eval!r}")
    if not data_files:
        raise DataError("emd task YAML: dataset_kwargs.data_files must map split names to jsonl files")
    splits = {}
    for split, name in data_files.items():
        path = (HERE / name).resolve()
        if not path.is_file():
            raise DataError(f"{path}: data file for split '{split}' not found (run evaluation/tasks/generate.py)")
        rows = []
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}: row {line_no}: not valid JSON ({exc.msg})") from exc
            if unsafe_code_eval and isinstance(row, dict) and "tests" in row:
                row["unsafe_code_eval"] = True
            rows.append(row)
        splits[split] = datasets.Dataset.from_list(rows)
    return datasets.DatasetDict(splits)


# --------------------------------------------------------------------------------------- emd_arith

_NUMBER = r"-?\$?\d[\d,]*(?:\.\d+)?"


def extract_final_number(response: str) -> str | None:
    """The number after the last ``Answer:``, else the last number in the text; None if none.

    Commas and dollar signs are dropped so "1,200" and "$12" compare as numbers.
    """
    marked = re.findall(r"[Aa]nswer\s*(?:is)?\s*[:=]?\s*\**\s*(" + _NUMBER + ")", response)
    found = marked or re.findall(_NUMBER, response)
    if not found:
        return None
    return found[-1].replace(",", "").replace("$", "").rstrip(".")


def process_arith(doc: dict, results: list[str]) -> dict[str, int]:
    """``process_results`` hook of emd_arith: exact match of the final number (as a number)."""
    predicted = extract_final_number(results[0])
    if predicted is None:
        return {"exact_match": 0}
    try:
        return {"exact_match": int(float(predicted) == float(doc["answer"]))}
    except ValueError:
        return {"exact_match": 0}


# ---------------------------------------------------------------------------------------- emd_code

_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(response: str, doc: dict) -> str:
    """The program to test, from a chat answer or a plain completion.

    A chat model usually answers with a fenced code block holding the whole function: take the
    first block that defines the entry point (else the first block). Without a chat template
    the model continues the prompt (the function body): prepend the prompt's signature.
    """
    blocks = _FENCE.findall(response)
    define = re.compile(r"^\s*def\s+" + re.escape(doc["entry_point"]) + r"\s*\(", re.MULTILINE)
    for block in blocks:
        if define.search(block):
            return block
    text = blocks[0] if blocks else response
    if define.search(text):
        return text
    return doc["prompt"] + text


def process_code(doc: dict, results: list[str]) -> dict[str, int]:
    """``process_results`` hook of emd_code: 1 when the hidden tests pass in the sandbox, else 0.

    Timeouts, refused operations (file writes outside the scratch folder, sockets, processes) and
    code that does not compile all score 0. Where bubblewrap is missing this raises
    ``SandboxUnavailableError`` unless the item carries ``unsafe_code_eval`` (see :func:`load_jsonl`).
    """
    program = extract_code(results[0], doc)
    outcome = run_python(program, doc["tests"], timeout=CODE_TIMEOUT_S, memory_mb=CODE_MEMORY_MB,
                         unsafe_code_eval=bool(doc.get("unsafe_code_eval", False)))
    return {"pass_at_1": int(outcome.passed)}
