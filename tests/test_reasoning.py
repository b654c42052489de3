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


# ---- answers wrapped in <answer> (MM-Eureka, VLAA-Thinker, GLM-4.1V-Thinking) -----------

@pytest.mark.parametrize("text, reasoning, answer, source, truncated", [
    # VLAA-Thinker's system prompt: <think> reasoning process here </think> <answer> answer here </answer>
    ("<think> count the apples </think> <answer> There are 3 apples. </answer>", "count the apples",
     "There are 3 apples.", "tags", False),
    # GLM-4.1V-Thinking: the result boxed inside the answer (GLM-V glmv_reward README)
    ("<think>15 + 27 = 42</think><answer><|begin_of_box|>42<|end_of_box|></answer>", "15 + 27 = 42", "42", "tags",
     False),
    ("<think>r</think>\n<answer>\nThe total is <|begin_of_box|>12<|end_of_box|> g.\n</answer>", "r",
     "The total is 12 g.", "tags", False),
    # text after </answer> is kept, the tags are not
    ("<think>r</think><answer>B</answer>\nB is the cup.", "r", "B\nB is the cup.", "tags", False),
    # opened but never closed: still the answer (cut off while answering, not while thinking)
    ("<think>r</think><answer>I cannot help with th", "r", "I cannot help with th", "tags", False),
    # ...unless the thinking itself was never closed
    ("<think>r <answer>A</answer>", "r <answer>A</answer>", "", "tags", True),
    # an <answer> that does not open the answer is left as written
    ("<think>r</think>Use <answer> tags.", "r", "Use <answer> tags.", "tags", False),
    # no thinking markup at all (thinking switched off)
    ("<answer>No.</answer>", "", "No.", "none", False),
    ("<think>r</think><answer></answer>", "r", "", "tags", False),
])
def test_answer_tags_are_unwrapped(text, reasoning, answer, source, truncated):
    s = split_text(text)
    assert (s.reasoning, s.answer, s.source, s.truncated_in_reasoning) == (reasoning, answer, source, truncated)


def test_unwrapping_keeps_the_raw_output_and_judges_can_opt_out():
    text = "<think>t</think> <answer>B</answer>"
    g = parse_completion(Completion(content=text, finish_reason="stop"))
    assert (g.answer, g.raw, g.full) == ("B", text, text)
    assert parse_completion(Completion(content=text), unwrap=False).answer == "<answer>B</answer>"
    # the server's reasoning parser took the thinking: the content is still unwrapped
    field = parse_completion(Completion(content="<answer><|begin_of_box|>7<|end_of_box|></answer>",
                                        reasoning_content="3 + 4", finish_reason="stop"))
    assert (field.reasoning, field.answer, field.reasoning_source) == ("3 + 4", "7", "field")


# ---- Mulberry's "###" sections --------------------------------------------------------------

MULBERRY = ("### Image Description:\nTwo parallel lines cut by a transversal; angle 4 is 57 degrees.\n\n"
            "### Rationales:\nCorresponding angles are equal.\n\n### Let's think step by step.\n### Step 1:\n"
            "Angle 5 corresponds to angle 4.\n\n### The final answer is: A: 57")


def test_mulberry_sections_split_on_the_final_answer_line():
    s = split_text(MULBERRY)
    assert s.answer == "A: 57" and s.source == "sections" and not s.truncated_in_reasoning
    assert s.reasoning == MULBERRY[:MULBERRY.index("### The final answer")].strip()
    assert s.reasoning.startswith("### Image Description:") and s.reasoning.endswith("corresponds to angle 4.")


@pytest.mark.parametrize("text", [
    MULBERRY.replace("### The final answer is: A: 57", "### Step 2:\nAngle 5 is"),  # cut before the final section
    MULBERRY + "\n### The final answer is: B",  # two final sections: the authors keep the output whole too
    "Explained above. The final answer is: A",  # not a ### section
])
def test_without_exactly_one_final_section_the_output_stays_whole(text):
    s = split_text(text)
    assert (s.reasoning, s.answer, s.source, s.truncated_in_reasoning) == ("", text, "none", False)
