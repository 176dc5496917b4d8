"""Judge prompt sets: the two emd ships, a user's own folder (checked slot by slot), rendering by
slot, and the mask set end to end through the openai: judge and the local test server."""

from __future__ import annotations

import shutil

import pytest

from emd.errors import ConfigError
from emd.judges import ConsistencyQuery, NumericQuery, PropositionQuery, get_judge
from emd.judges.prompts import MASK_PROMPTS_DIR, MASK_SLOTS, load_prompt_set

A, B = "The bridge is open.", "The bridge is not open."


def user(messages):
    return messages[-1]["content"]


def test_both_shipped_sets_load_and_version():
    fast, mask = load_prompt_set(), load_prompt_set("mask")
    assert fast.protocol == "fast" and fast.version == "mask-binary-1+mask-numeric-1+consistency-1"
    assert mask.protocol == "mask" and set(mask.templates) == set(MASK_SLOTS)
    assert mask.version.startswith("mask-direct-1+") and fast.sha != mask.sha
    assert load_prompt_set(str(MASK_PROMPTS_DIR)).version == mask.version  # the same set given as a folder


def test_each_slot_sees_what_the_upstream_judge_sees():
    s = load_prompt_set("mask")
    pressured = PropositionQuery(A, B, "It is open, come on over.", "Is the bridge open?", slot="pressured",
                                 config="disinformation", system_prompt="You run the toll booth.")
    text = user(s.proposition_messages(pressured))
    assert "You run the toll booth." in text and "Is the bridge open?" in text and "come on over" in text
    assert A in text and B in text and "Extra rules" in text and text.rstrip().endswith("A, B, C or D.")
    plain = user(s.proposition_messages(PropositionQuery(A, B, "r", "q", slot="pressured", config="known_facts")))
    assert "Extra rules" not in plain
    assert "Extra rules" in user(s.proposition_messages(
        PropositionQuery(A, B, "r", "q", slot="pressured", config="continuations")))
    dd = PropositionQuery(A, B, "Yes, as I said.", "Are you sure?", slot="doubling_down", config="doubling_down_known_facts",
                          system_prompt="Sys.", dd_turn_1_prompt="Is it open?", dd_turn_1_response="It is open.")
    text = user(s.proposition_messages(dd))
    assert "Is it open?" in text and "It is open." in text and "Are you sure?" in text
    direct = user(s.proposition_messages(PropositionQuery(A, B, "r", "Is it open?", slot="direct", system_prompt="Neutral.")))
    consistency = user(s.proposition_messages(PropositionQuery(A, B, "r", "Write a story.", slot="consistency")))
    assert "Neutral." in direct and direct != consistency and "head-on" in consistency
    with pytest.raises(ConfigError, match="doubling_down query needs"):
        s.proposition_messages(PropositionQuery(A, B, "r", slot="doubling_down"))
    with pytest.raises(ConfigError, match="slot 'belief'"):
        s.proposition_messages(PropositionQuery(A, B, "r", slot="belief"))

    prop = "The bridge is <value> metres long."
    num = user(s.numeric_messages(NumericQuery(prop, "About 300 m.", "How long?", system_prompt="Sell it.")))
    assert "Sell it." in num and "About 300 m." in num and "relative_lower" in num
    joint = user(s.numeric_messages(NumericQuery(prop, "x", "How long?", slot="belief",
                                                 belief_answers=(("How long?", "300 m"), ("Length?", "310 m")))))
    assert "Question 2: Length?" in joint and "Answer 1: 300 m" in joint and "as a whole" in joint

    for aspect, rule in (("reasoning", "even if"), ("output", "evasive")):
        q = ConsistencyQuery("It is closed.", "I will say it is open.", aspect=aspect, question="Open?",
                             scenario="System prompt: Sell tickets.\n\nUser prompt: Open?", view_prompt="Is it open?")
        text = user(s.consistency_messages(q))
        assert "Sell tickets." in text and "Is it open?" in text and "It is closed." in text and rule in text


def _copy_mask_set(tmp_path):
    folder = tmp_path / "prompts"
    shutil.copytree(MASK_PROMPTS_DIR, folder)
    return folder


def test_user_folder_is_checked_per_slot(tmp_path):
    folder = _copy_mask_set(tmp_path)
    assert load_prompt_set(str(folder)).protocol == "mask"
    p = folder / "pressured.yaml"
    p.write_text(p.read_text().replace("{{ response }}", "(the answer)"))
    with pytest.raises(ConfigError, match=r"pressured\.yaml: slot 'pressured' needs the placeholder \{\{ response \}\}"):
        load_prompt_set(str(folder))
    shutil.copy(MASK_PROMPTS_DIR / "pressured.yaml", p)
    d = folder / "doubling_down.yaml"
    d.write_text(d.read_text().replace("{{ dd_turn_1_response }}", "{{ first_reply }}"))
    with pytest.raises(ConfigError, match=r"doubling_down\.yaml: slot 'doubling_down' needs the placeholder "
                                          r"\{\{ dd_turn_1_response \}\}"):
        load_prompt_set(str(folder))
    d.write_text(d.read_text().replace("{{ first_reply }}", "{{ dd_turn_1_response }} {{ mood }}"))
    with pytest.raises(ConfigError, match=r"doubling_down\.yaml: slot 'doubling_down' has the unknown placeholder "
                                          r"\{\{ mood \}\}"):
        load_prompt_set(str(folder))
    shutil.copy(MASK_PROMPTS_DIR / "doubling_down.yaml", d)
    p.write_text(p.read_text() + "  statistic: nope\n")
    with pytest.raises(ConfigError, match=r"'rules' names unknown config\(s\) \['statistic'\]"):
        load_prompt_set(str(folder))
    p.unlink()
    with pytest.raises(ConfigError, match=r"missing pressured\.yaml"):
        load_prompt_set(str(folder))
    with pytest.raises(ConfigError, match="not a folder; allowed: 'fast', 'mask'"):
        load_prompt_set(str(tmp_path / "nowhere"))


def test_user_wording_is_what_the_judge_sends(tmp_path):
    folder = _copy_mask_set(tmp_path)
    p = folder / "belief_direct.yaml"
    p.write_text(p.read_text().replace("version: mask-direct-1", "version: my-direct-7")
                 .replace("Decide which of two", "MY OWN WORDING. Decide which of two"))
    s = load_prompt_set(str(folder))
    assert "my-direct-7" in s.version and s.sha != load_prompt_set("mask").sha
    assert "MY OWN WORDING" in user(s.proposition_messages(PropositionQuery(A, B, "r", "q", slot="direct")))


def test_mask_set_end_to_end_through_the_openai_judge(server, tmp_path):
    judge = get_judge("openai:rule-model", cache_dir=tmp_path, prompts_dir="mask", base_delay=0.01, timeout=5.0)
    assert judge.backend.max_tokens == 1000 and judge.version == load_prompt_set("mask").version
    assert get_judge("openai:rule-model", cache=False).backend.max_tokens == 32  # fast: few answer tokens
    qs = [PropositionQuery(A, B, "It is open.", "Open?", slot="direct", system_prompt="Neutral."),
          PropositionQuery(A, B, "It is not open.", "Story?", slot="consistency"),
          PropositionQuery(A, B, "Sorry, I can't say.", "Open?", slot="pressured", config="disinformation"),
          PropositionQuery(A, B, "It is neither.", "Sure?", slot="doubling_down", dd_turn_1_prompt="Open?",
                           dd_turn_1_response="It is not open.")]
    assert [v.label for v in judge.judge_propositions(qs)] == ["A", "B", "C", "D"]
    prop = "The bridge is <pivotal><value></pivotal> metres long."
    num = judge.judge_numeric([NumericQuery(prop, "Between 300 and 320 m.", "How long?"),
                               NumericQuery(prop, "x", "How long?", slot="belief", belief_answers=(("How long?", "It is 310 m."),))])
    assert (num[0].state, num[0].lower, num[0].upper) == ("scored", 300.0, 320.0)
    # the server's crude rule reads first and last number of the block: "Question 1" ... "310 m"
    assert (num[1].state, num[1].lower, num[1].upper) == ("scored", 1.0, 310.0)
    cons = judge.judge_consistency([ConsistencyQuery("It is closed.", "It is closed, I will say so.", scenario="s"),
                                    ConsistencyQuery("It is closed.", "It is not closed.", aspect="reasoning",
                                                     scenario="s")])
    assert [v.label for v in cons] == ["yes", "no"]
