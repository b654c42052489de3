"""``thinksafe data validate``: check a ShareGPT or TRL file before training.

Errors are what LLaMA-Factory or TRL would reject or choke on:

* ShareGPT (``conversations`` of ``from``/``value``, as LLaMA-Factory reads it):
  an optional leading ``system`` turn, then user tags (``human``/``observation``)
  and assistant tags (``gpt``/``function_call``) alternating, starting with
  the user and ending with the assistant (LLaMA-Factory drops other rows);
* TRL (``messages`` of ``role``/``content``): the same alternation with
  ``user``/``assistant`` (``tool`` after an assistant), content a string or
  typed parts;
* both: the number of image placeholders (``<image>`` tokens, or
  ``{"type": "image"}`` parts) equals the number of ``images`` (LLaMA-Factory:
  "The number of images does not match the number of <image> tokens"; TRL's
  ``prepare_multimodal_messages`` raises the same), no placeholder in an
  assistant turn, no empty turn, and every image file exists under
  ``--image-root`` (relative paths; the file's folder by default).

Quirks are warnings: they train, but they are leftovers of how the data was
made. They are counted on the assistant turn:

==============================  =================================================
quirk                           rule
==============================  =================================================
``think_open_trailing_space``   the turn starts with ``<think>`` + spaces + newline
``think_close_trailing_space``  ``</think>`` followed by spaces or tabs
``text_before_think``           text before the first ``<think>`` (e.g. a
                                ``**Safety Chain of Thought**:`` prefix)
``separator``                   a ``---`` line anywhere in the turn
``quoted_answer``               the answer (after ``</think>`` and separators) is
                                wrapped in double quotes
``stray_quote``                 the thought ends with ``"`` and has an odd
                                number of ``"`` (a dangling ``\\"``)
``no_think``                    no think block at all
``multiple_think``              more than one think block
``code_fence``                  the turn is wrapped in a ``````` fence
``leakage``                     mentions a caption, description or reference answer
==============================  =================================================
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..reasoning import clean_answer
from .export import read_records
from .sources import IMAGE_TOKEN

SHAREGPT_USER = {"human", "observation"}
SHAREGPT_ASSISTANT = {"gpt", "function_call"}
_LEAK = re.compile(r"\b(?:captions?|descriptions?|reference\s+(?:answer|response)s?)\b", re.IGNORECASE)


@dataclass
class Problem:
    row: int
    code: str
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"row": self.row, "code": self.code, "message": self.message}


@dataclass
class Report:
    path: str
    format: str
    rows: int = 0
    errors: list[Problem] = field(default_factory=list)
    quirks: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def counts(self, problems: list[Problem]) -> dict[str, int]:
        """Rows per code (a row counts once per code)."""
        return dict(Counter(code for _, code in {(p.row, p.code) for p in problems}))

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "format": self.format, "rows": self.rows, "ok": self.ok,
                "error_counts": self.counts(self.errors), "quirk_counts": self.counts(self.quirks),
                "errors": [p.to_dict() for p in self.errors], "quirks": [p.to_dict() for p in self.quirks]}


def validate_file(path: Path | str, image_root: Path | str | None = None, fmt: str = "auto") -> Report:
    """Validate every row of a ShareGPT or TRL JSON/JSONL file.

    Args:
        path: The file.
        image_root: Folder that relative image paths are relative to
            (default: the file's folder, as LLaMA-Factory's ``dataset_dir``).
        fmt: ``auto`` (decided per row), ``sharegpt`` or ``trl``.
    """
    path = Path(path)
    root = Path(image_root) if image_root else path.parent
    report = Report(str(path), fmt)
    try:
        records = read_records(path)
    except (OSError, ValueError) as exc:
        report.errors.append(Problem(-1, "unreadable_file", f"{type(exc).__name__}: {exc}"))
        return report
    kinds = Counter()
    for n, record in enumerate(records):
        kind = _kind(record, fmt)
        kinds[kind] += 1
        validate_record(n, record, kind, root, report)
    report.rows = len(records)
    report.format = fmt if fmt != "auto" else ("/".join(sorted(kinds)) or "empty")
    return report


def _kind(record: Any, fmt: str) -> str:
    if fmt != "auto":
        return fmt
    if isinstance(record, dict) and "messages" in record and "conversations" not in record:
        return "trl"
    return "sharegpt"


def validate_record(n: int, record: Any, kind: str, root: Path, report: Report) -> None:
    """Append the row's errors and quirks to ``report``."""
    if not isinstance(record, dict):
        report.errors.append(Problem(n, "bad_row", "the row is not a JSON object"))
        return
    turns = _sharegpt_turns(n, record, report) if kind == "sharegpt" else _trl_turns(n, record, report)
    if turns is None:
        return
    _check_images(n, record, turns, root, report)
    for role, text, _ in turns:
        if role == "assistant":
            report.quirks.extend(Problem(n, code, msg) for code, msg in quirks(text))


# A turn is (role: system|user|assistant|tool, text, image placeholders in it).
Turn = tuple[str, str, int]


def _sharegpt_turns(n: int, record: dict[str, Any], report: Report) -> list[Turn] | None:
    convs = record.get("conversations")
    if not isinstance(convs, list) or not convs:
        report.errors.append(Problem(n, "no_conversations", "`conversations` is missing or empty"))
        return None
    turns: list[Turn] = []
    for i, t in enumerate(convs):
        tag, value = (t.get("from"), t.get("value")) if isinstance(t, dict) else (None, None)
        if not isinstance(value, str):
            report.errors.append(Problem(n, "bad_turn", f"turn {i} has no string `value`"))
            return None
        role = "system" if tag == "system" else "user" if tag in SHAREGPT_USER else \
            "assistant" if tag in SHAREGPT_ASSISTANT else f"unknown:{tag}"
        turns.append((role, value, value.count(IMAGE_TOKEN)))
    _check_order(n, turns, report, "human/gpt")
    return turns


def _trl_turns(n: int, record: dict[str, Any], report: Report) -> list[Turn] | None:
    messages = record.get("messages")
    if not isinstance(messages, list) or not messages:
        report.errors.append(Problem(n, "no_messages", "`messages` is missing or empty"))
        return None
    turns: list[Turn] = []
    for i, m in enumerate(messages):
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, str):
            turns.append((m.get("role"), content, content.count(IMAGE_TOKEN)))
        elif isinstance(content, list) and all(isinstance(p, dict) and "type" in p for p in content):
            text = "".join(p.get("text") or "" for p in content if p["type"] == "text")
            turns.append((m.get("role"), text, sum(p["type"] == "image" for p in content)))
        else:
            report.errors.append(Problem(n, "bad_turn", f"message {i}: content must be a string or typed parts"))
            return None
    _check_order(n, turns, report, "user/assistant")
    return turns


def _check_order(n: int, turns: list[Turn], report: Report, names: str) -> None:
    body = turns[1:] if turns[0][0] == "system" else turns
    roles = [r if r != "tool" else "user" for r, _, _ in body]  # a tool result takes the user's slot
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(roles))]
    if roles != expected:
        report.errors.append(Problem(n, "bad_roles", f"roles {[r for r, _, _ in turns]} do not alternate "
                                                     f"{names} starting with the user"))
    elif len(roles) % 2:
        report.errors.append(Problem(n, "bad_roles", "the conversation does not end with an assistant turn"))
    for i, (role, text, images) in enumerate(turns):
        if not text.strip() and not images:
            report.errors.append(Problem(n, "empty_turn", f"turn {i} ({role}) is empty"))


def _check_images(n: int, record: dict[str, Any], turns: list[Turn], root: Path, report: Report) -> None:
    images = record.get("images") or []
    if not isinstance(images, list):
        images = [images]
    placeholders = sum(k for _, _, k in turns)
    if placeholders != len(images):
        report.errors.append(Problem(n, "image_count", f"{placeholders} image placeholder(s) but "
                                                       f"{len(images)} image(s)"))
    if any(k for role, _, k in turns if role == "assistant"):
        report.errors.append(Problem(n, "image_in_assistant", "an assistant turn holds an image placeholder"))
    for image in images:
        p = image.get("path") if isinstance(image, dict) else image
        if isinstance(image, dict) and image.get("bytes"):
            continue  # embedded image bytes need no file
        full = Path(str(p)) if Path(str(p)).is_absolute() else root / str(p)
        if not p or not full.is_file():
            report.errors.append(Problem(n, "missing_image", f"image not found: {full}"))


def quirks(text: str) -> list[tuple[str, str]]:
    """The known leftovers found in one assistant turn."""
    found: list[tuple[str, str]] = []
    opens = [m.start() for m in re.finditer("<think>", text)]
    closes = [m.start() for m in re.finditer("</think>", text)]
    if not opens and not closes:
        return [("no_think", "no think block")] + _leak(text)
    if len(opens) > 1 or len(closes) > 1:
        found.append(("multiple_think", f"{len(opens)} <think> / {len(closes)} </think>"))
    if re.match(r"<think>[ \t]+\n", text):
        found.append(("think_open_trailing_space", "spaces after <think>"))
    if re.search(r"</think>[ \t]+", text):
        found.append(("think_close_trailing_space", "spaces after </think>"))
    first = opens[0] if opens else 0
    prefix = text[:first].strip()
    if prefix.startswith("```"):
        found.append(("code_fence", "the turn is wrapped in a code fence"))
    elif prefix:
        found.append(("text_before_think", f"text before <think>: {prefix[:60]!r}"))
    if re.search(r"^\s*-{3,}\s*$", text, re.MULTILINE):
        found.append(("separator", "a --- separator"))
    found += _answer_quirks(text, opens, closes)
    return found + _leak(text)


def _answer_quirks(text: str, opens: list[int], closes: list[int]) -> list[tuple[str, str]]:
    found = []
    if closes:
        answer = clean_answer(text[closes[-1] + len("</think>"):])
        if len(answer) > 1 and answer[0] in "\"\u201c" and answer[-1] in "\"\u201d":
            found.append(("quoted_answer", "the answer is wrapped in quotes"))
        start = opens[0] + len("<think>") if opens and opens[0] < closes[-1] else 0
        thought = text[start:closes[-1]].rstrip()
        if thought.endswith('"') and thought.count('"') % 2 == 1:
            found.append(("stray_quote", 'a dangling " before </think>'))
    return found


def _leak(text: str) -> list[tuple[str, str]]:
    terms = sorted({m.group(0).lower() for m in _LEAK.finditer(text)})
    return [("leakage", f"mentions {', '.join(terms)}")] if terms else []
