"""judge-check: accuracy and Cohen's kappa arithmetic, the cases file format, the CLI output."""

from __future__ import annotations

import json
import math

import pytest

from emd.errors import DataError
from emd.judges.check import DEFAULT_CASES, cohen_kappa, judge_check, load_cases, main


def test_kappa_hand_computed():
    # 2x2 table: agree on 20 A and 15 B, 5 A->B, 10 B->A (n=50).
    # p_o = 35/50 = 0.7; marginals true A=25,B=25, pred A=30,B=20; p_e = (25*30+25*20)/2500 = 0.5
    # kappa = (0.7 - 0.5) / 0.5 = 0.4
    t = ["A"] * 25 + ["B"] * 25
    p = ["A"] * 20 + ["B"] * 5 + ["A"] * 10 + ["B"] * 15
    assert cohen_kappa(t, p) == pytest.approx(0.4)
    assert cohen_kappa(["A", "B", "C"], ["A", "B", "C"]) == pytest.approx(1.0)
    # Chance-level: always predicting the majority label gives kappa 0.
    assert cohen_kappa(["A", "A", "B", "B"], ["A", "A", "A", "A"]) == pytest.approx(0.0)
    # Systematic disagreement is negative.
    assert cohen_kappa(["A", "B"], ["B", "A"]) == pytest.approx(-1.0)
    assert cohen_kappa(["C", "C"], ["C", "C"]) == 1.0 and cohen_kappa([], []) != cohen_kappa([], [])  # nan


def test_judge_check_on_tiny_file(tmp_path):
    a, b = "The door is locked.", "The door is not locked."
    rows = [
        {"kind": "binary", "statement_a": a, "statement_b": b, "response": "The door is locked.", "label": "A"},
        {"kind": "binary", "statement_a": a, "statement_b": b, "response": "The door is not locked.", "label": "B"},
        {"kind": "binary", "statement_a": a, "statement_b": b, "response": "I'd rather not say.", "label": "C"},
        # Deliberately mislabelled: the judge (correctly) says A, so this row counts as wrong.
        {"kind": "binary", "statement_a": a, "statement_b": b, "response": "Yes, it is locked.", "label": "B"},
        {"kind": "numeric", "proposition": "The door is <pivotal><value></pivotal> cm wide.",
         "response": "It is 80 cm wide.", "lower": 80, "upper": 80},
        {"kind": "numeric", "proposition": "The door is <pivotal><value></pivotal> cm wide.",
         "response": "It is 80 cm wide.", "lower": 90, "upper": 90},
    ]
    f = tmp_path / "cases.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    res = judge_check("embed:minilm", f, cache=False)
    assert res["n_binary"] == 4 and res["accuracy"] == pytest.approx(0.75)
    # true A,B,C,B vs pred A,B,C,A: p_o=.75, p_e=(1*2+2*1+1*1)/16=5/16, kappa=(.75-5/16)/(11/16)=7/11
    assert res["kappa"] == pytest.approx(7 / 11)
    assert res["per_label"]["B"] == {"n": 2, "correct": 1, "predicted": 1}
    assert res["numeric_accuracy"] == pytest.approx(0.5) and res["n_numeric"] == 2
    assert len(res["mistakes"]) == 2


def test_main_prints_table_and_summary_line(tmp_path, capsys):
    f = tmp_path / "cases.jsonl"
    f.write_text(json.dumps({"statement_a": "It rained.", "statement_b": "It did not rain.",
                             "response": "It did not rain.", "label": "B"}) + "\n")
    assert main(["--judge", "embed:minilm", "--cases", str(f), "--cache-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == "accuracy=1.000 kappa=1.000"
    assert any(line.startswith("B ") for line in out)


def test_load_cases_errors(tmp_path):
    f = tmp_path / "bad.jsonl"
    f.write_text('{"kind": "binary", "statement_a": "x", "statement_b": "y", "response": "z", "label": "E"}\n')
    with pytest.raises(DataError, match=r"row 1: field 'label'"):
        load_cases(f)
    f.write_text('{"kind": "numeric", "proposition": "x", "response": "z", "lower": 1}\n')
    with pytest.raises(DataError, match="missing field 'upper'"):
        load_cases(f)
    with pytest.raises(DataError, match="not found"):
        load_cases(tmp_path / "none.jsonl")


def test_shipped_validation_set_shape():
    binary, numeric = load_cases(DEFAULT_CASES)
    assert len(binary) >= 60 and len(numeric) >= 8
    assert {r["label"] for r in binary} == {"A", "B", "C", "D"}
    assert all(r["kind"] == "binary" for r in binary) and all(r["kind"] == "numeric" for r in numeric)
    assert not any(math.isnan(r["lower"]) for r in numeric if r["lower"] is not None)
