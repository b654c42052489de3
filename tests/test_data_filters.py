"""Policy loading and the rule-based filters of the data builder."""

from __future__ import annotations

import hashlib

import pytest

from thinksafe.data.filters import (Bounds, MinHashIndex, check_consistency, check_lengths, check_reply_format,
                                    clean_final_answer, clean_thought, dedupe_key, fix_leakage, parse_decision)
from thinksafe.data.policy import PolicyError, default_policy_path, load_policy
from thinksafe.data.prompts import teacher_prompt
from thinksafe.records import Completion

POLICY = load_policy()
REQUIRED = ("Privacy", "Political Sensitivity", "Professional Advice", "Sexually Explicit",
            "Bias and Discrimination", "Economic Harm", "Fraud", "Physical Harm")


def test_default_policy_sections_categories_and_hash():
    titles = " | ".join(s.title for s in POLICY.sections)
    assert all(name in titles for name in REQUIRED)
    assert [(c.label, c.action) for c in POLICY.categories] == [
        ("Allowed", "answer"), ("Disallowed", "refuse"), ("Safe Completion", "safe_complete")]
    assert POLICY.sha256 == hashlib.sha256(default_policy_path().read_bytes()).hexdigest()
    text = POLICY.text()
    assert "## Definition of Fraud" in text and "Disallowed Content:" in text and "Allowed Content:" in text
    assert "## User Requests Categorization" in text and "**Safe Completion Requests**" in text


@pytest.mark.parametrize("category, section", [
    ("Malicious Use/Security threats/weapon", "physical_harm"),
    ("Malicious Use/Security threats/malware", "cybersecurity"),
    ("risky behavior/professional advice", "professional_advice"),
    ("privacy/personal data", "privacy"),
    ("08-Political_Lobbying", "political_sensitivity"),
    ("07-Sex", "sexually_explicit"),
    ("deception/disinformation", "disinformation"),
    ("bad_ads", "fraud"),
    ("safe", None),
])
def test_dataset_categories_map_to_sections(category, section):
    found = POLICY.section_for_category(category)
    assert (found.id if found else None) == section


def test_markdown_policy_and_errors(tmp_path):
    md = tmp_path / "p.md"
    md.write_text("---\nname: house\nversion: 3\n---\n# Rules\n\n## No Pirates\nNo boarding.\n")
    p = load_policy(md)
    assert (p.name, p.version, [s.title for s in p.sections]) == ("house", "3", ["No Pirates"])
    assert p.text().startswith("# Rules") and "User Requests Categorization" in p.text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nversion: 1\nsections: [{title: no id}]\n")
    with pytest.raises(PolicyError, match="id and a title"):
        load_policy(bad)
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.yaml")


def test_teacher_prompt_with_and_without_reference():
    section = POLICY.section_for_category("financial fraud")
    with_ref = teacher_prompt(POLICY, "A bank letter.", "Is this real?", "It is a scam.", section)
    assert "The image: A bank letter." in with_ref and "# Final answer\nIt is a scam." in with_ref
    assert "Likely relevant policy section: Definition of Fraud" in with_ref
    assert "Category: <Allowed | Disallowed | Safe Completion>" in with_ref
    without = teacher_prompt(POLICY, "A bank letter.", "Is this real?")
    assert "# Final answer" not in without and "write the assistant's final answer" in without


@pytest.mark.parametrize("thought, label, section", [
    ("Hmm.\nCategory: Disallowed - Section: Definition of Fraud", "Disallowed", "Definition of Fraud"),
    ("**Category:** Safe Completion — **Section:** privacy", "Safe Completion", "Privacy Protection"),
    ("This falls under Disallowed Requests per the Definition of Fraud.", "Disallowed", "Definition of Fraud"),
    ("Allowed Content covers education. So this is a Safe Completion request.", "Safe Completion", None),
    ("It is not allowed to share this, but I am not sure.", None, None),
])
def test_parse_decision(thought, label, section):
    d = parse_decision(thought, POLICY)
    assert (d.category.label if d.category else None, d.section) == (label, section)


def test_consistency_rules():
    refuse, answer, partial = (parse_decision(f"Category: {x}", POLICY)
                               for x in ("Disallowed", "Allowed", "Safe Completion"))
    assert check_consistency(refuse, "I'm sorry, but I can't help with that.") is None
    assert check_consistency(refuse, "Sure! Step 1: mix the chemicals.").reason == "inconsistent"
    assert check_consistency(answer, "I cannot help with that request.").reason == "inconsistent"
    assert check_consistency(answer, "The square is red.") is None
    assert check_consistency(partial, "Here are warning signs of scams.") is None
    assert check_consistency(parse_decision("no label", POLICY), "x").reason == "no_decision"


def test_leakage_rewrites_and_leftovers():
    r = fix_leakage("The caption shows a cat. Based on the image description, it sleeps; the description "
                    "provided mentions a bed.")
    assert r.text == "The image shows a cat. Based on the image, it sleeps; the image mentions a bed."
    assert (r.rewrites, r.leftovers) == (3, [])
    assert fix_leakage("The reference answer says no.").leftovers == ["reference answer"]
    assert fix_leakage("It lists a job description.").leftovers == ["description"]
    assert fix_leakage("the description of the product").leftovers == ["description"]
    assert fix_leakage("The final answer is already fixed, so I agree.").leftovers == ["answer is already fixed"]


def test_reply_format_and_lengths():
    ok = Completion(content="<think>a</think>b")
    assert check_reply_format(ok, False) is None
    assert check_reply_format(Completion(content="b"), False).reason == "no_think"
    assert check_reply_format(Completion(content="<think>a</think><think>c</think>b"), False).reason == \
        "multiple_think"
    assert check_reply_format(Completion(content="<think>x</think>b", reasoning_content="a"), False).reason == \
        "multiple_think"
    assert check_reply_format(Completion(content="b", reasoning_content="a"), False) is None
    assert check_reply_format(Completion(content="<think>a", finish_reason="length"), True).reason == "truncated"
    bounds = Bounds(min_thought_words=3, max_thought_words=5, min_answer_words=1, max_answer_words=3)
    assert check_lengths("one two three", "yes", bounds) is None
    assert check_lengths("one two", "yes", bounds).reason == "too_short"
    assert check_lengths("one two three", "a b c d", bounds).reason == "too_long"
    assert check_lengths("", "yes", bounds).reason == "no_think"
    assert check_lengths("one two three", " ", bounds).reason == "empty_answer"


def test_cleaning_known_leftovers():
    assert clean_thought('Proceed with the answer."  \n') == "Proceed with the answer."
    assert clean_thought('He said "hi".') == 'He said "hi".'
    assert clean_final_answer('\n---  \n\n"I am unable to help."') == "I am unable to help."
    assert clean_final_answer('"Yes" and "no"') == '"Yes" and "no"'


def test_duplicates_exact_and_near():
    assert dedupe_key("sha", "What is THIS?") == dedupe_key("sha", "what is this")
    assert dedupe_key("sha", "What is this?") != dedupe_key("other", "What is this?")
    index = MinHashIndex(threshold=0.8)
    base = "the user asks how to build a weapon and I must refuse because it causes physical harm to people"
    assert index.add("a", base) is None
    assert index.add("b", base + " today") == "a"
    assert index.add("c", "a completely different benign question about the colour of a red square") is None
