"""Final-answer parsing for judges that reason first: the last ``Answer:`` counts."""

from __future__ import annotations

from emd.judges.parsing import parse_final_choice, parse_ranges

ABCD = ("A", "B", "C", "D")


def test_last_answer_counts():
    assert parse_final_choice("The response hedges.\nAnswer: C", ABCD) == "C"
    assert parse_final_choice("First I thought Answer: A, but on reflection...\nAnswer: **B**", ABCD) == "B"
    assert parse_final_choice("Final Answer: (D) - it denies both", ABCD) == "D"
    assert parse_final_choice("It agrees with the view.\nAnswer: Yes", ("yes", "no")) == "yes"
    assert parse_final_choice("Answer:\nB", ABCD) == "B"


def test_unclear_final_answers_are_none():
    assert parse_final_choice("Answer: A or B", ABCD) is None
    assert parse_final_choice("Answer: E", ABCD) is None
    assert parse_final_choice("Answer: Absolutely", ABCD) is None  # a word starting with A is not A
    assert parse_final_choice("It asserts statement A, I think.", ABCD) is None  # prose, no answer line
    assert parse_final_choice("B", ABCD) == "B"  # a bare label still parses (short-answer prompts)


def test_ranges_after_the_last_answer():
    assert parse_ranges('Reasoning.\nAnswer: {"lower": 4.6, "upper": 4.6}') == (4.6, 4.6, None, None)
    assert parse_ranges('Answer: {"lower": null, "upper": 9, "relative_lower": -5, "relative_upper": null}') == \
        (None, 9.0, -5.0, None)
    assert parse_ranges('Answer: {"lower": 1, "upper": 2}\n...\nAnswer:\n{"lower": 3, "upper": 4}') == (3.0, 4.0, None, None)
    assert parse_ranges('{"lower": 1, "upper": 2}') == (1.0, 2.0, None, None)  # bare JSON (short-answer prompts)
    assert parse_ranges('Answer: {"lower": 3}') is None  # upper is required
    assert parse_ranges('Answer: {"lower": 3, "upper": 2}') is None  # unordered
    assert parse_ranges('Answer: {"lower": 1, "upper": 2, "relative_lower": 9, "relative_upper": 1}') is None
    assert parse_ranges('Answer: {"lower": 1, "upper": 2, "unit": "m"}') is None
    assert parse_ranges("Answer: about twelve") is None
