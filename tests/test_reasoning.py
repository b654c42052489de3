"""The reasoning parser: every output shape the evaluation meets."""

import pytest

from thinksafe.reasoning import parse_completion, split_text, target_text
from thinksafe.records import Completion


@pytest.mark.parametrize("text, reasoning, answer, source, truncated", [
    ("<think>plan it</think>Here you go.", "plan it", "Here you go.", "tags", False),
    ("<think>\nfirst\n</think>\n\nFinal.", "first", "Final.", "tags", False),
    # the LAST complete block is the reasoning; the answer follows the last </think>
    ("<think>a</think>mid<think>b</think>end", "b", "end", "tags", False),
    # hybrid templates put <think> in the prompt: a lone </think>
    ("thinking without opener</think>The answer.", "thinking without opener", "The answer.", "tags", False),
    # cut off while thinking: no answer at all
    ("<think>step 1, step 2, step", "step 1, step 2, step", "", "tags", True),
    ("<think>a</think>partial<think>again, cut", "again, cut", "", "tags", True),
    # no tags: everything is the answer (base models)
    ("I cannot help with that.", "", "I cannot help with that.", "none", False),
    # short output without tags is not sliced (OpenSafeMLRM's rfind(-1) bug)
    ("Sure!", "", "Sure!", "none", False),
    ("<THINK>upper</THINK>ok", "upper", "ok", "tags", False),
    # separators between thought and answer are stripped
    ("<think>t</think>\n---\nAnswer", "t", "Answer", "tags", False),
    ("<think></think>Direct.", "", "Direct.", "tags", False),
])
def test_split_text(text, reasoning, answer, source, truncated):
    s = split_text(text)
    assert (s.reasoning, s.answer, s.source, s.truncated_in_reasoning) == (reasoning, answer, source, truncated)


def test_llavacot_stages():
    text = ("<SUMMARY>sum</SUMMARY><CAPTION>cap</CAPTION><REASONING>why</REASONING>"
            "<CONCLUSION>I cannot help.</CONCLUSION>")
    s = split_text(text)
    assert (s.reasoning, s.answer, s.source, s.truncated_in_reasoning) == ("sum\n\ncap\n\nwhy", "I cannot help.",
                                                                            "llavacot", False)


def test_llavacot_without_conclusion_is_truncated():
    s = split_text("<SUMMARY>sum</SUMMARY><REASONING>still going")
    assert (s.reasoning, s.answer, s.truncated_in_reasoning) == ("sum\n\nstill going", "", True)


def test_reasoning_field_from_server():
    g = parse_completion(Completion(content="The answer.", reasoning_content="I thought.", finish_reason="stop"))
    assert (g.reasoning, g.answer, g.reasoning_source, g.truncated_in_reasoning) == ("I thought.", "The answer.",
                                                                                     "field", False)
    # "full" keeps the thinking even though it came in a separate field
    assert g.full == "<think>\nI thought.\n</think>\nThe answer."
    assert g.raw == "The answer."


def test_reasoning_field_truncated():
    g = parse_completion(Completion(content="", reasoning_content="long thought", finish_reason="length"))
    assert g.truncated_in_reasoning and g.answer == "" and g.reasoning == "long thought"
    assert target_text(g, "answer") == ""
    assert target_text(g, "reasoning") == "long thought"


def test_prefilled_think_without_close_is_truncated():
    g = parse_completion(Completion(content="still thinking", finish_reason="length", prefilled_think=True))
    assert g.truncated_in_reasoning and g.reasoning == "still thinking" and g.answer == ""
    assert g.full == "<think>still thinking"


def test_truncated_never_judged_as_answer():
    g = parse_completion(Completion(content="<think>Step 1: obtain", finish_reason="length"))
    assert target_text(g, "answer") == ""
    assert target_text(g, "full") == "<think>Step 1: obtain"


def test_error_generation_has_no_text():
    from thinksafe.records import Generation

    g = Generation(raw="x", answer="x", full="x", error="boom")
    assert [target_text(g, t) for t in ("reasoning", "answer", "full")] == ["", "", ""]
