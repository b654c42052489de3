"""Split a model's output into thinking and answer. The one place that does it.

Rules, in order:

1. The server returned the thinking in a separate field (``reasoning_content`` /
   ``reasoning``, vLLM and SGLang reasoning parsers): reasoning = that field,
   answer = ``content`` (itself cleaned of any stray ``</think>``).
2. LLaVA-CoT stages: ``<SUMMARY>``, ``<CAPTION>``, ``<REASONING>`` are the
   reasoning, ``<CONCLUSION>`` is the answer. Stages without a conclusion mean
   the output stopped while reasoning.
3. ``<think>`` tags: reasoning = inside the LAST complete block, answer = what
   follows the last ``</think>``. A ``</think>`` with no opening tag (hybrid
   templates put ``<think>`` in the prompt) makes everything before it the
   reasoning. An opening ``<think>`` never closed means the output was cut
   while thinking: answer empty, ``truncated_in_reasoning`` set; the unfinished
   trace is never treated as the answer.
4. Mulberry sections: exactly one line starting with ``### The final answer is:``
   (the marker its authors split on, ``infer.py``): reasoning = the sections
   before it, answer = the text after it. No marker, or more than one: rule 5
   (the authors' evaluation keeps such an output whole too).
5. No tags: the whole output is the answer, reasoning empty (unless the prompt
   was prefilled with ``<think>``, then it is an unclosed trace, as in 3).

The answer, whichever rule found it, is then unwrapped (:func:`unwrap_answer`):
an ``<answer>`` that opens it is removed with the first ``</answer>`` after it
(an ``<answer>`` never closed still opens an answer: the text after it), and
GLM's ``<|begin_of_box|>`` / ``<|end_of_box|>`` markers are removed, their
content kept. ``Generation.raw`` and ``Generation.full`` keep the output as
written. Judges parse their own replies with ``unwrap=False`` (a rubric may ask
for ``<answer>`` tags).

Unlike OpenSafeMLRM, a missing ``</think>`` never slices the text at ``rfind`` = -1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .records import Completion, Generation

OPEN, CLOSE = "<think>", "</think>"
_OPEN_RE = re.compile(r"<think>", re.IGNORECASE)
_CLOSE_RE = re.compile(r"</think>", re.IGNORECASE)
_STAGES = ("SUMMARY", "CAPTION", "REASONING")
_STAGE_RE = re.compile(r"<(SUMMARY|CAPTION|REASONING|CONCLUSION)>(.*?)(?:</\1>|(?=<(?:SUMMARY|CAPTION|REASONING|CONCLUSION)>)|\Z)",
                       re.DOTALL | re.IGNORECASE)
# Separators that some training sets put between the thought and the answer.
_LEADING_NOISE = re.compile(r"^(?:\s|-{3,}|\*{3,}|_{3,})+")
# MM-Eureka, VLAA-Thinker and GLM-4.1V-Thinking answer in <answer>...</answer>; GLM boxes the result.
_ANSWER_OPEN = re.compile(r"<answer>", re.IGNORECASE)
_ANSWER_CLOSE = re.compile(r"</answer>", re.IGNORECASE)
_BOX_MARKERS = re.compile(r"<\|(?:begin|end)_of_box\|>")
# Mulberry's last section (HJYao00/Mulberry infer.py splits on "### The final answer is:").
_FINAL_SECTION = re.compile(r"^[ \t]*###[ \t]*The final answer is:", re.MULTILINE)


@dataclass(frozen=True)
class Split:
    reasoning: str
    answer: str
    source: str  # "field" | "tags" | "llavacot" | "sections" | "none"
    truncated_in_reasoning: bool


def clean_answer(text: str) -> str:
    """Trim whitespace and leading ``---`` separators from an answer."""
    return _LEADING_NOISE.sub("", text).strip()


def unwrap_answer(text: str) -> str:
    """An answer without the markup around it: a leading ``<answer>`` and the first
    ``</answer>`` after it (text after that is kept), and GLM's box markers.
    ``<answer>`` tags that do not open the answer are left as written."""
    text = clean_answer(text)
    if _ANSWER_OPEN.match(text):
        rest = text[len("<answer>"):]
        close = _ANSWER_CLOSE.search(rest)
        text = rest if close is None else rest[:close.start()] + rest[close.end():]
    return clean_answer(_BOX_MARKERS.sub("", text))


def split_text(text: str, prefilled_think: bool = False, unwrap: bool = True) -> Split:
    """Split raw text that may carry its thinking inline (rules 2-5); ``unwrap``:
    the answer goes through :func:`unwrap_answer`."""
    split = _split(text, prefilled_think)
    if unwrap and split.answer:
        split = replace(split, answer=unwrap_answer(split.answer))
    return split


def _split(text: str, prefilled_think: bool) -> Split:
    if _is_llavacot(text):
        return _split_llavacot(text)
    closes = [m for m in _CLOSE_RE.finditer(text)]
    opens = [m for m in _OPEN_RE.finditer(text)]
    if closes:
        last_close = closes[-1]
        trailing_open = [m for m in opens if m.start() > last_close.start()]
        if trailing_open:
            # Thinking was re-opened after the last close and never finished.
            start = trailing_open[-1].end()
            return Split(text[start:].strip(), "", "tags", True)
        before = [m for m in opens if m.end() <= last_close.start()]
        start = before[-1].end() if before else 0
        reasoning = text[start:last_close.start()].strip()
        return Split(reasoning, clean_answer(text[last_close.end():]), "tags", False)
    if opens:
        return Split(text[opens[-1].end():].strip(), "", "tags", True)
    if prefilled_think:
        return Split(text.strip(), "", "tags", True)
    finals = list(_FINAL_SECTION.finditer(text))
    if len(finals) == 1:
        return Split(text[:finals[0].start()].strip(), clean_answer(text[finals[0].end():]), "sections", False)
    return Split("", clean_answer(text), "none", False)


def _is_llavacot(text: str) -> bool:
    return bool(re.search(r"<(SUMMARY|CAPTION|REASONING|CONCLUSION)>", text, re.IGNORECASE))


def _split_llavacot(text: str) -> Split:
    reasoning_parts, answer, has_conclusion = [], "", False
    for m in _STAGE_RE.finditer(text):
        stage, body = m.group(1).upper(), m.group(2).strip()
        if stage == "CONCLUSION":
            has_conclusion, answer = True, body
        elif body:
            reasoning_parts.append(body)
    reasoning = "\n\n".join(reasoning_parts)
    if not has_conclusion:
        return Split(reasoning, "", "llavacot", True)
    return Split(reasoning, clean_answer(answer), "llavacot", False)


def parse_completion(c: Completion, unwrap: bool = True) -> Generation:
    """Turn a backend's Completion into a Generation (rule 1, else split_text).

    ``unwrap=False`` keeps the answer's markup (a judge's reply, parsed by its rubric)."""
    content = c.content or ""
    if c.reasoning_content:
        reasoning = c.reasoning_content.strip()
        inner = split_text(content, unwrap=unwrap) if _CLOSE_RE.search(content) else None
        answer = inner.answer if inner else unwrap_answer(content) if unwrap else clean_answer(content)
        # vLLM leaves content empty when the generation stopped inside the thinking.
        truncated = not content.strip() and c.finish_reason == "length"
        full = f"{OPEN}\n{reasoning}\n{CLOSE}\n{content}"
        split = Split(reasoning, answer, "field", truncated)
    else:
        split = split_text(content, prefilled_think=c.prefilled_think, unwrap=unwrap)
        full = (OPEN + content) if c.prefilled_think and not _OPEN_RE.search(content) else content
    return Generation(
        raw=content,
        reasoning=split.reasoning,
        answer=split.answer,
        reasoning_source=split.source,  # type: ignore[arg-type]
        finish_reason=c.finish_reason,
        truncated_in_reasoning=split.truncated_in_reasoning,
        prompt_tokens=c.prompt_tokens,
        completion_tokens=c.completion_tokens,
        reasoning_tokens=c.reasoning_tokens,
        latency_s=c.latency_s,
        full=full.strip(),
    )


def target_text(gen: Generation, target: str) -> str:
    """The text a judge sees for a target; empty means nothing to judge."""
    if gen.error:
        return ""
    if target == "reasoning":
        return gen.reasoning
    if target == "answer":
        # An answer cut off inside the thinking does not exist.
        return "" if gen.truncated_in_reasoning else gen.answer
    return gen.full
