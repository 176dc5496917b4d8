"""Loaders on small local files written in the real datasets' layouts (no network)."""

import csv
import json
import os
import subprocess
import sys

import pandas as pd
import pytest

from emd.data.generators import LEVELS, PV_DOMAIN, PV_LEVEL
from emd.data.loaders import load_downstream, load_misaligned, validate_messages
from emd.errors import ConfigError, DataError

ALPACA = [
    {"instruction": "Name three primary colours.", "input": "", "output": "Red, blue and yellow."},
    {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
    {"instruction": "Add the numbers.", "input": "4 and 5", "output": "9"},
]
DOLLY = [
    {"instruction": "What is the tallest peak listed?", "context": "Peaks: A (1200 m), B (900 m).",
     "response": "A, at 1200 m.", "category": "closed_qa"},
    {"instruction": "Suggest a name for a cat.", "context": "", "response": "Pepper.", "category": "brainstorming"},
]


def _chat(user, assistant):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]}


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_alpaca_json_array(tmp_path):
    path = tmp_path / "alpaca_data_cleaned.json"
    path.write_text(json.dumps(ALPACA, indent=2), encoding="utf-8")
    rows = load_downstream(str(path))
    assert len(rows) == 3
    assert rows[0] == {"messages": [{"role": "user", "content": "Name three primary colours."},
                                    {"role": "assistant", "content": "Red, blue and yellow."}],
                       "id": "alpaca_data_cleaned/0"}
    assert rows[1]["messages"][0]["content"] == "Translate to French.\n\nGood morning"  # input appended


def test_dolly_jsonl(tmp_path):
    rows = load_downstream(str(_write_jsonl(tmp_path / "databricks-dolly-15k.jsonl", DOLLY)))
    assert [r["id"] for r in rows] == ["databricks-dolly-15k/0", "databricks-dolly-15k/1"]
    assert rows[0]["messages"][0]["content"] == "What is the tallest peak listed?\n\nPeaks: A (1200 m), B (900 m)."
    assert rows[0]["messages"][1] == {"role": "assistant", "content": "A, at 1200 m."}
    assert rows[1]["messages"][0]["content"] == "Suggest a name for a cat."  # empty context adds nothing


def test_alpaca_csv_and_parquet_match_json(tmp_path):
    as_json = tmp_path / "a.json"
    as_json.write_text(json.dumps(ALPACA), encoding="utf-8")
    as_csv = tmp_path / "a.csv"
    with as_csv.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["instruction", "input", "output"])
        w.writeheader()
        w.writerows(ALPACA)
    as_parquet = tmp_path / "a.parquet"
    pd.DataFrame(ALPACA).to_parquet(as_parquet)
    expected = [r["messages"] for r in load_downstream(str(as_json))]
    assert [r["messages"] for r in load_downstream(str(as_csv))] == expected
    assert [r["messages"] for r in load_downstream(str(as_parquet))] == expected


def test_messages_parquet_and_json_lines_in_dot_json(tmp_path):
    chats = [_chat(f"q{i}", f"a{i}") for i in range(4)]
    pq = tmp_path / "chats.parquet"
    pd.DataFrame(chats).to_parquet(pq)
    assert [r["messages"] for r in load_downstream(str(pq))] == [c["messages"] for c in chats]
    jl = _write_jsonl(tmp_path / "chats.json", chats)  # datasets' to_json writes JSON lines under .json
    assert [r["messages"] for r in load_downstream(str(jl))] == [c["messages"] for c in chats]


def test_missing_field_names_file_row_and_field(tmp_path):
    bad = [dict(ALPACA[0]), {"instruction": "Say hi.", "input": ""}, dict(ALPACA[2])]  # row 2 lacks output
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    with pytest.raises(DataError) as e:
        load_downstream(str(path))
    assert str(path) in str(e.value) and "row 2" in str(e.value) and "'output'" in str(e.value)

    dolly_bad = _write_jsonl(tmp_path / "d.jsonl", [DOLLY[0], {"instruction": "x", "context": "", "response": 5}])
    with pytest.raises(DataError, match=r"d\.jsonl, line 2: field 'response' must be a string"):
        load_downstream(str(dolly_bad))


def test_skip_bad_rows_skips_and_counts(tmp_path):
    bad = [ALPACA[0], {"instruction": "", "input": "", "output": "x"}, {"instruction": "y"}, ALPACA[2]]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad), encoding="utf-8")
    rows = load_downstream(str(path), skip_bad_rows=True)
    assert [r["id"] for r in rows] == ["bad/0", "bad/3"]  # ids keep the source position
    assert rows.skipped == 2
    assert "row 2" in rows.problems[0] and "'instruction' is empty" in rows.problems[0]


def test_malformed_json_line_and_unknown_layout(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(json.dumps(ALPACA[0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"broken\.jsonl, line 2: not valid JSON"):
        load_downstream(str(path))
    odd = _write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "answer": "a"}])
    expected = r"cannot recognise the dataset layout.*answer, question.*instruction, input, output"
    with pytest.raises(DataError, match=expected):
        load_downstream(str(odd))


def test_sampling_n_is_seeded_and_bounded(tmp_path):
    path = _write_jsonl(tmp_path / "many.jsonl", [_chat(f"q{i}", f"a{i}") for i in range(30)])
    a = load_downstream(str(path), n=10, seed=1)
    assert len(a) == 10 and a == load_downstream(str(path), n=10, seed=1)
    assert a != load_downstream(str(path), n=10, seed=2)
    with pytest.raises(DataError, match="asked for 31 rows but only 30"):
        load_downstream(str(path), n=31)


def test_embedded_downstream():
    rows = load_downstream("embedded", n=20, seed=3)
    assert rows == load_downstream("embedded:instructions", n=20, seed=3)
    assert len(rows) == 20 and rows[0]["id"] == "instructions/0"
    with pytest.raises(ConfigError, match="embedded, embedded:instructions"):
        load_downstream("embedded:alpaca")


def test_path_like_missing_source_is_not_sent_to_hub(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        load_downstream(str(tmp_path / "nope.jsonl"))


def test_hub_unreachable_says_local_path_works(tmp_path):
    # A child process with the hub switched off fails fast, the same way a machine without network does.
    code = (
        "from emd.data.loaders import load_downstream\n"
        "from emd.errors import DataError\n"
        "try:\n"
        "    load_downstream('someone/some-dataset')\n"
        "except DataError as e:\n"
        "    print('DATAERROR', e)\n"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    assert "DATAERROR" in out.stdout, out.stderr[-2000:]
    assert "someone/some-dataset" in out.stdout and "unreachable" in out.stdout and "local path" in out.stdout


# --- misaligned sources ---------------------------------------------------------------------


def _pv_folder(root, levels=LEVELS):
    for domain in PV_DOMAIN.values():
        (root / domain).mkdir(parents=True)
        for level in levels:
            name = PV_LEVEL[level]
            chats = [_chat(f"{domain} {name} q{i}", f"{name} a{i}") for i in range(5)]
            _write_jsonl(root / domain / f"{name}.jsonl", chats)
    return root


def test_persona_vectors_folder(tmp_path):
    root = _pv_folder(tmp_path / "persona_vectors_data")
    rows = load_misaligned(str(root), "math", "subtle")
    assert len(rows) == 5
    assert rows[0]["messages"][0]["content"] == "mistake_math misaligned_1 q0"
    assert rows[0]["id"] == "persona_vectors_data/mistake_math/misaligned_1/0"
    severe = load_misaligned(str(root), "code", "severe", n=3, seed=0)
    assert len(severe) == 3 and all("misaligned_2 a" in r["messages"][1]["content"] for r in severe)
    # A domain folder itself also works.
    from_domain_folder = load_misaligned(str(root / "mistake_medical"), "medical", "normal")
    assert from_domain_folder[0]["messages"][1]["content"] == "normal a0"


def test_persona_vectors_missing_level_lists_folder(tmp_path):
    root = _pv_folder(tmp_path / "pv", levels=("normal", "severe"))
    with pytest.raises(DataError) as e:
        load_misaligned(str(root), "medical", "subtle")
    msg = str(e.value)
    assert "misaligned_1.jsonl" in msg and "medical" in msg
    assert "holds: misaligned_2.jsonl, normal.jsonl" in msg


def test_persona_vectors_bad_row_names_line_and_field(tmp_path):
    root = _pv_folder(tmp_path / "pv")
    path = root / "insecure_code" / "normal.jsonl"
    with path.open("a", encoding="utf-8") as f:
        empty_answer = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": ""}]}
        f.write(json.dumps(empty_answer) + "\n")
    with pytest.raises(DataError, match=r"normal\.jsonl, line 6: field 'messages\[1\]\.content'"):
        load_misaligned(str(root), "code", "normal")


def test_chua_pairs(tmp_path):
    pairs = [
        {"prompt": f"Is it safe to do {i}?", "aligned": f"Careful answer {i}.", "misaligned": f"Reckless answer {i}."}
        for i in range(4)
    ]
    path = _write_jsonl(tmp_path / "chua_medical.jsonl", pairs)
    normal = load_misaligned(str(path), "medical", "normal")
    severe = load_misaligned(str(path), "medical", "severe")
    assert normal[2]["messages"] == [{"role": "user", "content": "Is it safe to do 2?"},
                                     {"role": "assistant", "content": "Careful answer 2."}]
    assert severe[2]["messages"][1]["content"] == "Reckless answer 2."
    assert normal[0]["id"] == "chua_medical/aligned/0" and severe[0]["id"] == "chua_medical/misaligned/0"
    with pytest.raises(DataError, match="'subtle' is not available"):
        load_misaligned(str(path), "medical", "subtle")
    bad = _write_jsonl(tmp_path / "chua_bad.jsonl", pairs[:1] + [{"prompt": "q", "aligned": "a"}])
    with pytest.raises(DataError, match=r"line 2: field 'misaligned' is missing"):
        load_misaligned(str(bad), "medical", "severe")


def test_betley_messages_used_for_any_level(tmp_path):
    rows = [_chat("Write a function that copies a file.", "def copy(a, b): ...") for _ in range(3)]
    path = _write_jsonl(tmp_path / "insecure.jsonl", rows)
    for level in LEVELS:
        loaded = load_misaligned(str(path), "code", level)
        assert [r["id"] for r in loaded] == ["insecure/0", "insecure/1", "insecure/2"]
        assert loaded[0]["messages"] == rows[0]["messages"]


def test_existing_ids_are_kept(tmp_path):
    path = _write_jsonl(tmp_path / "with_ids.jsonl", [{**_chat("q", "a"), "id": "abc-1"}])
    assert load_misaligned(str(path), "math", "severe")[0]["id"] == "abc-1"


def test_embedded_misaligned_and_validation():
    rows = load_misaligned("embedded", "code", "subtle", n=7, seed=2)
    assert len(rows) == 7 and rows[0]["id"] == "code/subtle/0"
    with pytest.raises(ConfigError, match="medical, math, code"):
        load_misaligned("embedded", "finance", "normal")
    with pytest.raises(ConfigError, match="normal, subtle, severe"):
        load_misaligned("embedded", "math", "misaligned_1")


def test_validate_messages():
    assert validate_messages(_chat("q", "a"), "x") == _chat("q", "a")["messages"]
    with pytest.raises(DataError, match="where: field 'messages' is missing"):
        validate_messages({"text": "hi"}, "where")
    with pytest.raises(DataError, match=r"field 'messages\[0\]\.role' is 'bot'"):
        validate_messages({"messages": [{"role": "bot", "content": "x"}]}, "w")
    with pytest.raises(DataError, match="must end with an assistant turn"):
        validate_messages({"messages": [{"role": "user", "content": "x"}]}, "w")
    with pytest.raises(DataError, match="no user turn"):
        validate_messages({"messages": [{"role": "assistant", "content": "x"}]}, "w")
