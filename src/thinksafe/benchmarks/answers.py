"""Reading a model's answer: a Yes/No at its start, or the option it chose.

These readers see the ANSWER only: the thinking is removed before (see
:func:`thinksafe.reasoning.target_text`), and an answer cut off while thinking
never reaches them (it is ``missing``). What they cannot read is ``None``: the
caller counts it as ``unparsed``, never as a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

# ---- Yes / No at the start -----------------------------------------------------------

# Decoration a model may put before its verdict: markdown, quotes, brackets,
# "Answer:" labels, LaTeX \boxed{...}.
_LEAD = re.compile(r"""^(?:[\s*_#>`"'“”‘’(\[{]|\\boxed\{|\\text\{|(?:final\s+)?answer\s*[:：-]"""
                   r"""|verdict\s*[:：-])*""", re.IGNORECASE)
# The word must end there: "Not", "Nope", "Know", "Yesterday" and "Yes/No" are not verdicts.
_VERDICT = re.compile(r"(yes|no)(?![\w/-])", re.IGNORECASE)


def parse_yes_no(answer: str) -> str | None:
    """``"yes"``/``"no"`` when the answer STARTS with that word, else None.

    Tolerates leading markdown, quotes, brackets and an ``Answer:`` label
    (``**Yes**``, ``"No."``, ``Yes,``, ``\\boxed{No}``); never matches "no"
    inside another word ("Not", "Nope", "know").
    """
    m = _VERDICT.match(_LEAD.sub("", answer, count=1))
    return m.group(1).lower() if m else None


# ---- multiple choice -----------------------------------------------------------------

@dataclass(frozen=True)
class Choice:
    """The option an answer chose, and which rule read it."""

    letter: str
    how: str
    """``letter`` (the answer is just the letter), ``statement`` ("Answer: B", "the answer is (B)"),
    ``leading`` ("B. ...", "(B) ..."), ``parenthesized`` (one "(B)" in the text), ``option_text``
    (the option's own words), ``token`` (one lone option letter among the words)."""


_MARKUP = re.compile(r"\*\*|__|`+|\$")
_WRAPPERS = re.compile(r"\\(?:boxed|text|textbf|mathrm)\{([^{}]*)\}")
_SPACES = re.compile(r"\s+")
_BARE = re.compile(r"[(\[]?\s*([A-Za-z])\s*[)\]]?[.:]?")
_LEADING = re.compile(r"[(\[]([A-Z])[)\]]|([A-Z])(?:[)\]]|[.:](?=\s|$)|\s+[-–—]\s)")
_PAREN = re.compile(r"[(\[]([A-Z])[)\]]")
# "the answer is (B)", "Answer: B", "correct option is B", "I choose option B", "answer would be: (B)".
_STATEMENT = re.compile(
    r"(?i:\b(?:answer|option|choice|choose|select|pick)\b(?:\s+(?:is|would\s+be|should\s+be|will\s+be))?"
    r"\s*[:：=\-–]?\s*(?:\b(?:option|choice|letter)\b\s*)?)"
    r"[(\[]?([A-Z])[)\]]?(?=[\s.,;:!?)\]]|$)")
# "A or B", "(A) and (C)": a hedge between two options is no answer.
_HEDGE = re.compile(r"(?<![\w(\[])[(\[]?([A-Z])[)\]]?,?(?:\s+(?:or|and)\s+|\s*/\s*)[(\[]?([A-Z])[)\]]?(?!\w)")
# "(B) is correct", "B is the correct answer".
_IS_CORRECT = re.compile(r"(?<![\w(\[])[(\[]?([A-Z])[)\]]?\s+(?i:is\s+(?:the\s+)?(?:correct|right|best))")


def clean_markup(text: str) -> str:
    """The text without markdown emphasis, backticks, ``$`` and LaTeX ``\\boxed{}``/``\\text{}`` wrappers,
    spaces collapsed."""
    for _ in range(3):  # nested \boxed{\text{B}}
        text = _WRAPPERS.sub(r"\1", text)
    return _SPACES.sub(" ", _MARKUP.sub("", text)).strip()


def _norm(text: str) -> str:
    """Lower-cased, spaces collapsed, surrounding punctuation and quotes removed."""
    return _SPACES.sub(" ", text.lower()).strip(" \t\n.,;:!?\"'“”‘’()[]")


def _only(letters: list[str], valid: Mapping[str, str]) -> str | None:
    found = {x for x in letters if x in valid}
    return found.pop() if len(found) == 1 else None


def _by_option_text(text: str, options: Mapping[str, str]) -> str | None:
    """The one option whose words the answer is, or contains (longest match wins over its own substrings)."""
    answer = _norm(text)
    texts = {k: _norm(v) for k, v in options.items() if _norm(v)}
    exact = [k for k, v in texts.items() if v == answer]
    if len(exact) == 1:
        return exact[0]
    hits = [k for k, v in texts.items() if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", answer)]
    # "dark red" found: "red" is found too, inside it; keep only matches no other match contains.
    hits = [k for k in hits if not any(k != o and texts[k] in texts[o] and texts[k] != texts[o] for o in hits)]
    return hits[0] if len(hits) == 1 else None


def _lone_token(text: str, options: Mapping[str, str]) -> str | None:
    """One option letter standing alone among the words ("It has to be C here"); None when
    two letters stand alone, or when the one letter is an "A" that may be the article ("A cat")."""
    words = re.sub(r"[.()\[\],:;!*#{}?\"']", " ", text).split()
    at = [i for i, w in enumerate(words) if w in options]
    letter = _only([words[i] for i in at], options)
    if letter == "A" and any(i + 1 < len(words) and words[i + 1][:1].islower() for i in at):
        return None
    return letter


def extract_choice(answer: str, options: Mapping[str, str]) -> Choice | None:
    """The option a multiple-choice answer chose, or None when it cannot be read.

    Rules, in order (the first that gives exactly one valid letter wins):

    1. ``letter``: the whole answer is a letter: ``B``, ``(B)``, ``B.``, ``**B**``, ``\\boxed{B}``.
    2. ``statement``: an explicit statement: "Answer: B", "The answer is (B).", "the correct
       option is B", "B is correct". Statements naming two different letters, or stating a
       hedge ("Answer: A or B"): None.

    Without a statement, a hedge between two options ("A or B", "(A) and (C)") is None;
    after one, a hedge elsewhere does not count ("The answer is B. A and C are wrong." is B).
    3. ``leading``: the answer starts with a marked letter: "B. cat", "(B) cat", "B) cat", "B: cat".
    4. ``parenthesized``: exactly one distinct "(X)" in the answer.
    5. ``option_text``: the answer is one option's text, or contains exactly one option's text
       (whole words, case and surrounding punctuation ignored; "dark red" beats "red").
    6. ``token``: exactly one distinct option letter stands alone among the words (never an "A"
       that may be the article: "A cat ...").

    Letters are upper case (except a one-letter answer) and must be among ``options``.

    Args:
        answer: The answer, thinking already removed.
        options: Letter -> option text, in order (``{"A": "cat", "B": "dog"}``); a text may be
            empty when only the letters are known.
    """
    text = clean_markup(answer)
    if not text or not options:
        return None
    bare = _BARE.fullmatch(text)
    if bare and bare.group(1).upper() in options:
        return Choice(bare.group(1).upper(), "letter")
    hedges = [m.span() for m in _HEDGE.finditer(text)
              if m.group(1) in options and m.group(2) in options and m.group(1) != m.group(2)]
    stated = [m for rx in (_STATEMENT, _IS_CORRECT) for m in rx.finditer(text) if m.group(1) in options]
    if stated:
        # a statement of a hedge ("Answer: A or B") states nothing
        if any(a <= m.start(1) < b for m in stated for a, b in hedges):
            return None
        letter = _only([m.group(1) for m in stated], options)
        return Choice(letter, "statement") if letter else None
    if hedges:  # a hedge outside any statement stops the weaker rules
        return None
    lead = _LEADING.match(text)
    if lead and (lead.group(1) or lead.group(2)) in options:
        return Choice(lead.group(1) or lead.group(2), "leading")
    for how, find in (("parenthesized", lambda: _only(_PAREN.findall(text), options)),
                      ("option_text", lambda: _by_option_text(text, options)),
                      ("token", lambda: _lone_token(text, options))):
        letter = find()
        if letter:
            return Choice(letter, how)
    return None


def letters_for(choices: list[str]) -> dict[str, str]:
    """``{"A": choices[0], "B": choices[1], ...}``."""
    return {chr(ord("A") + i): str(c) for i, c in enumerate(choices)}
