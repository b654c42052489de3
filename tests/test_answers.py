"""The shared answer readers: the multiple-choice reader and the start-of-answer Yes/No."""

from __future__ import annotations

import pytest

from thinksafe.benchmarks.answers import Choice, extract_choice, letters_for, parse_yes_no
from thinksafe.benchmarks.mmstar import parse_options

OPTIONS = {"A": "The suitcase is on the book.", "B": "The suitcase is beneath the cat.",
           "C": "The suitcase is beneath the bed.", "D": "The suitcase is beneath the book."}
COLOURS = letters_for(["red", "dark red", "blue", "12"])


@pytest.mark.parametrize("answer, letter, how", [
    ("B", "B", "letter"), ("b", "B", "letter"), ("(C)", "C", "letter"), ("D.", "D", "letter"),
    ("**B**", "B", "letter"), ("\\boxed{C}", "C", "letter"), ("$\\boxed{\\text{A}}$", "A", "letter"),
    ("[B]", "B", "letter"),
    ("Answer: B", "B", "statement"), ("The answer is (C).", "C", "statement"),
    ("**Final answer:** D", "D", "statement"), ("The correct option is B, since the cat sits below.", "B", "statement"),
    ("I choose option C.", "C", "statement"), ("So the answer would be: (A)", "A", "statement"),
    ("(D) is correct.", "D", "statement"), ("Looking again, B is the correct answer.", "B", "statement"),
    ("B. The suitcase is beneath the cat.", "B", "leading"), ("(A) on the book", "A", "leading"),
    ("C) beneath the bed", "C", "leading"), ("D: it is beneath the book", "D", "leading"),
    ("It must be (C), given the bed frame.", "C", "parenthesized"),
    ("The suitcase is beneath the bed.", "C", "option_text"),
    ("the suitcase is beneath the book", "D", "option_text"),
    ("I see that the suitcase is beneath the cat here.", "B", "option_text"),
])
def test_reads_the_chosen_option(answer, letter, how):
    choice = extract_choice(answer, OPTIONS)
    assert choice is not None and (choice.letter, choice.how) == (letter, how)


@pytest.mark.parametrize("answer", [
    "", "   ", "I cannot tell from this image.", "E", "(F)",  # nothing, or a letter that is no option
    "Answer: A or B", "The answer is A. No wait, the answer is B.",  # two different statements
    "A cat sits near the suitcase.",  # the article "A" is no answer
    "I think it's A because B is wrong",  # two lone letters
    "It could be (A) or (B).", "Either A or C.", "B/C",  # hedges
    "The suitcase is beneath something.",  # no option's words
])
def test_unreadable_answers_are_none(answer):
    assert extract_choice(answer, OPTIONS) is None


@pytest.mark.parametrize("answer, letter", [
    ("The answer is B. Options A and C are wrong.", "B"),  # a hedge-like phrase after a statement
    ("Between A and B, B is correct.", "B"),
])
def test_a_statement_wins_over_a_hedge_elsewhere(answer, letter):
    assert extract_choice(answer, OPTIONS) == Choice(letter, "statement")


def test_option_text_prefers_the_longest_match_and_whole_words():
    assert extract_choice("It is dark red.", COLOURS).letter == "B"
    assert extract_choice("red", COLOURS).letter == "A"
    assert extract_choice("I count 12 of them", COLOURS).letter == "D"
    assert extract_choice("I count 112 of them", COLOURS) is None  # "12" inside "112" is no match
    assert extract_choice("red or blue", COLOURS) is None


def test_letters_only_options_and_a_lone_letter():
    letters = {k: "" for k in "ABCD"}
    assert extract_choice("It has to be C here", letters) == Choice("C", "token")
    assert extract_choice("The suitcase is beneath the bed.", letters) is None
    assert extract_choice("B", {}) is None


def test_mmstar_options_are_read_from_the_question():
    q = ("Which option describe the object relationship in the image correctly?\nOptions: A: The suitcase is on "
         "the book., B: The suitcase is beneath the cat., C: The suitcase is beneath the bed., D: The suitcase is "
         "beneath the book.")
    assert parse_options(q) == OPTIONS
    assert parse_options("How many? Options: A: 1, B: 2") == {"A": "1", "B": "2"}
    assert parse_options("What is shown?") == {}


@pytest.mark.parametrize("answer, word", [
    ("Yes", "yes"), ("**No**, there is none.", "no"), ("Answer: yes", "yes"), ("Not at all.", None),
    ("There is no dog.", None), ("", None),
])
def test_start_of_answer_yes_no(answer, word):
    assert parse_yes_no(answer) == word
