"""Rule-based checks and clean-ups on a teacher's thought and answer.

Every rejection carries a reason code (written to ``rejected.jsonl``):

========================  ==========  ===============================================
reason                    filter      meaning
========================  ==========  ===============================================
``no_think``              format      no thought (no think block, or an empty one)
``multiple_think``        format      more than one think block
``truncated``             format      the reply stopped at the token limit
``empty_answer``          format      nothing after the thought
``too_short``/``too_long``  format    thought or answer outside the length bounds
``leakage``               leakage     mentions the caption/description/reference answer
                                      in a way that cannot be rewritten safely
``no_decision``           consistency the thought never categorises the request
``inconsistent``          consistency the thought's decision and the answer disagree
``inconsistent_llm``      consistency the optional LLM checker says they disagree
``unsafe_answer``         safety      the judge labels the answer of a harmful seed unsafe
``judge_unparsed``        safety      the judge's verdict could not be read
``duplicate``             dedupe      same image and question as an earlier row
``near_duplicate``        dedupe      MinHash similarity above the threshold
========================  ==========  ===============================================
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass

from ..judges.refusal import find_refusal
from ..reasoning import clean_answer
from ..records import Completion
from .policy import Policy, RequestCategory

FILTER_OF = {
    "no_think": "format", "multiple_think": "format", "truncated": "format", "empty_answer": "format",
    "too_short": "format", "too_long": "format", "leakage": "leakage", "no_decision": "consistency",
    "inconsistent": "consistency", "inconsistent_llm": "consistency", "unsafe_answer": "safety",
    "judge_unparsed": "safety", "duplicate": "dedupe", "near_duplicate": "dedupe",
    "missing_image": "input", "unreadable_image": "input", "bad_row": "input",
    "caption_error": "stage", "teacher_error": "stage", "judge_error": "stage", "consistency_error": "stage",
}


@dataclass
class Rejection:
    reason: str
    detail: str = ""

    @property
    def filter(self) -> str:
        return FILTER_OF.get(self.reason, "other")


@dataclass
class Bounds:
    """Length bounds in words; thoughts shorter than a sentence teach nothing."""

    min_thought_words: int = 15
    max_thought_words: int = 3000
    min_answer_words: int = 2
    max_answer_words: int = 2000


# ---- format -------------------------------------------------------------------------
_OPEN = re.compile(r"<think>", re.IGNORECASE)
_CLOSE = re.compile(r"</think>", re.IGNORECASE)


def check_reply_format(c: Completion, truncated_in_reasoning: bool) -> Rejection | None:
    """Exactly one think block in the teacher's reply, and no cut-off.

    A native reasoning server puts the thought in ``reasoning_content``; any
    think tag left in ``content`` then means a second block.
    """
    content = c.content or ""
    opens, closes = len(_OPEN.findall(content)), len(_CLOSE.findall(content))
    if c.finish_reason == "length" or truncated_in_reasoning:
        return Rejection("truncated", f"finish_reason={c.finish_reason}")
    if c.reasoning_content and c.reasoning_content.strip():
        if opens or closes:
            return Rejection("multiple_think", "think tags in content besides the reasoning field")
        return None
    if closes == 0:
        return Rejection("no_think", "the reply has no think block")
    if opens > 1 or closes > 1:
        return Rejection("multiple_think", f"{opens} <think> / {closes} </think>")
    return None


def check_lengths(thought: str, answer: str, bounds: Bounds) -> Rejection | None:
    """Non-empty thought and answer, each within its word bounds."""
    if not thought.strip():
        return Rejection("no_think", "empty thought")
    if not answer.strip():
        return Rejection("empty_answer", "no answer after the thought")
    if _OPEN.search(thought + answer) or _CLOSE.search(thought + answer):
        return Rejection("multiple_think", "think tags inside the thought or answer")
    for name, text, low, high in (("thought", thought, bounds.min_thought_words, bounds.max_thought_words),
                                  ("answer", answer, bounds.min_answer_words, bounds.max_answer_words)):
        n = len(text.split())
        if n < low:
            return Rejection("too_short", f"{name} has {n} words (< {low})")
        if n > high:
            return Rejection("too_long", f"{name} has {n} words (> {high})")
    return None


# ---- cleaning -----------------------------------------------------------------------
def clean_thought(text: str) -> str:
    """Tidy a thought: no trailing spaces, no stray closing quote, no blank runs."""
    text = "\n".join(line.rstrip() for line in text.strip().splitlines())
    if text.endswith('"') and text.count('"') % 2 == 1:
        text = text[:-1].rstrip()  # the released data's stray `\"` before </think>
    return re.sub(r"\n{3,}", "\n\n", text)


def clean_final_answer(text: str) -> str:
    """Tidy an answer: no leading ``---``, no quotes wrapped around all of it."""
    text = clean_answer(text)
    if len(text) > 1 and text[0] == text[-1] == '"' and text.count('"') == 2:
        text = text[1:-1].strip()
    text = "\n".join(line.rstrip() for line in text.splitlines())
    return re.sub(r"\n{3,}", "\n\n", text)


def assemble(thought: str, answer: str) -> str:
    """The TiS assistant turn."""
    return f"<think>\n{thought}\n</think>\n{answer}"


# ---- leakage ------------------------------------------------------------------------
# "the (provided) caption/description (of the image)" reads naturally as "the
# image"; "a description", "job description" or any mention of the reference
# answer cannot be rewritten without changing the meaning, so those reject.
_REWRITE = re.compile(
    r"\b(?:the|this|that)\s+(?:(?:provided|given|detailed|accompanying|above|image(?:'s)?)\s+)*"
    r"(?:caption|description)(?:\s+of\s+the\s+image|\s+(?:provided|given))?\b(?!\s+of\b)",
    re.IGNORECASE)
# The last two catch a native reasoner thinking about its task ("the answer is
# already fixed") instead of about the image.
_LEAK = re.compile(r"\b(?:captions?|captioned|descriptions?|reference\s+(?:answer|response)s?|"
                   r"(?:given|provided|fixed)\s+(?:final\s+)?answer|answer\s+is\s+(?:already\s+)?fixed)\b",
                   re.IGNORECASE)


@dataclass
class LeakResult:
    text: str
    rewrites: int
    leftovers: list[str]


def fix_leakage(text: str) -> LeakResult:
    """Rewrite safe mentions of the caption to "the image"; list what remains."""
    count = 0

    def repl(m: re.Match) -> str:
        nonlocal count
        count += 1
        return "The image" if m.group(0)[0].isupper() else "the image"

    fixed = _REWRITE.sub(repl, text)
    return LeakResult(fixed, count, [m.group(0) for m in _LEAK.finditer(fixed)])


# ---- decision -----------------------------------------------------------------------
@dataclass
class Decision:
    category: RequestCategory | None
    section: str | None


def parse_decision(thought: str, policy: Policy) -> Decision:
    """The request category and policy section the thought settles on.

    The teacher is asked for a final ``Category: X - Section: Y`` line; if it
    is missing, the last category label mentioned (as a capitalised label,
    not "Allowed Content") is used.
    """
    labels = "|".join(re.escape(x) for x in sorted(policy.labels(), key=len, reverse=True))
    lines = re.findall(rf"^[\W_]*categor(?:y|isation|ization)\b[\W_]*({labels})\b(.*)$", thought,
                       re.IGNORECASE | re.MULTILINE)
    if lines:
        label, rest = lines[-1]
        m = re.search(r"section\W*\s*(.+)$", rest, re.IGNORECASE)
        return Decision(policy.category(label), _section_title(m.group(1), policy) if m else
                        _last_section(thought, policy))
    mentions = re.findall(rf"(?<![A-Za-z])({labels})(?![A-Za-z])(?!\s+[Cc]ontent)", thought)
    if not mentions:
        return Decision(None, _last_section(thought, policy))
    return Decision(policy.category(mentions[-1]), _last_section(thought, policy))


def _section_title(raw: str, policy: Policy) -> str:
    raw = raw.strip(" *_\"'`.<>")
    found = policy.find_section(raw)
    return found.title if found else raw


def _last_section(thought: str, policy: Policy) -> str | None:
    best, pos = None, -1
    low = thought.lower()
    for s in policy.sections:
        i = low.rfind(s.title.lower())
        if i > pos:
            best, pos = s.title, i
    return best


# ---- consistency --------------------------------------------------------------------
def check_consistency(decision: Decision, answer: str) -> Rejection | None:
    """The answer must carry out the thought's decision (rule-based).

    The refusal judge's detector decides whether the answer refuses; it weighs
    the opening most, so a helpful answer that says "I can't give medical
    advice" further down still counts as an answer.
    """
    if decision.category is None:
        return Rejection("no_decision", "the thought names no request category")
    refuses = find_refusal(answer) is not None
    action = decision.category.action
    if action == "refuse" and not refuses:
        return Rejection("inconsistent", f"thought: {decision.category.label} (refuse); the answer complies")
    if action == "answer" and refuses:
        return Rejection("inconsistent", f"thought: {decision.category.label} (answer); the answer refuses")
    return None


# ---- duplicates ---------------------------------------------------------------------
_PUNCT = str.maketrans("", "", string.punctuation + "\u2018\u2019\u201c\u201d")


def normalise(text: str) -> str:
    """Lower case, punctuation dropped, single spaces: how "the same question" is compared."""
    return " ".join(text.lower().translate(_PUNCT).split())


def dedupe_key(image_sha: str, question: str) -> str:
    """Exact-duplicate key: the same image with the same (normalised) question."""
    return hashlib.sha256(f"{image_sha}\n{normalise(question)}".encode()).hexdigest()[:20]


class MinHashIndex:
    """Near-duplicate detection over word 3-gram shingles (MinHash + LSH bands).

    ``add`` returns the id of an earlier text whose estimated Jaccard
    similarity is at least ``threshold``, else records the text and returns None.
    """

    def __init__(self, threshold: float = 0.9, num_perm: int = 64, bands: int = 16):
        import numpy as np

        self.threshold, self.bands, self.rows = threshold, bands, num_perm // bands
        rng = np.random.default_rng(0)
        self._a = rng.integers(1, (1 << 61) - 1, num_perm, dtype=np.uint64)
        self._b = rng.integers(0, (1 << 61) - 1, num_perm, dtype=np.uint64)
        self._buckets: dict[tuple, list[str]] = {}
        self._sigs: dict[str, object] = {}

    def signature(self, text: str):
        import numpy as np

        words = normalise(text).split()
        shingles = {" ".join(words[i:i + 3]) for i in range(max(1, len(words) - 2))}
        hashes = np.array([int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest(), "little")
                           for s in shingles], dtype=np.uint64)
        # Universal hashing modulo 2^64 (overflow wraps) is enough for dedupe.
        return (np.outer(hashes, self._a) + self._b).min(axis=0)

    def add(self, item_id: str, text: str) -> str | None:
        sig = self.signature(text)
        keys = [(b, sig[b * self.rows:(b + 1) * self.rows].tobytes()) for b in range(self.bands)]
        for key in keys:
            for other in self._buckets.get(key, []):
                if float((self._sigs[other] == sig).mean()) >= self.threshold:
                    return other
        self._sigs[item_id] = sig
        for key in keys:
            self._buckets.setdefault(key, []).append(item_id)
        return None
