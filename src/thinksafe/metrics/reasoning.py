"""Thinking-versus-answer analysis of one run (Think in Safety §5, SafeMLRM).

Works on ``samples.jsonl``-like dicts. A sample's answer *outcome* is its
answer judgment when that is ``safe`` or ``unsafe``; samples with an
unparsed/missing answer verdict (including outputs cut while thinking) have no
outcome and are left out of the outcome-based numbers, which say over how many
samples they were computed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..records import SAFE, UNSAFE
from .stats import point_biserial

BINARY = (SAFE, UNSAFE)


def _label(row: Mapping[str, Any], target: str) -> str | None:
    judgment = (row.get("judgments") or {}).get(target) or {}
    return judgment.get("label")


def _rate(count: int, n: int) -> dict[str, Any]:
    return {"count": count, "n": n, "rate": count / n if n else None}


def word_count(text: str | None) -> int:
    """Number of whitespace-separated words (0 for empty or missing text)."""
    return len(text.split()) if text else 0


def self_correction(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Disagreement between the thinking and the answer verdicts.

    Returns:
        ``self_correction``: reasoning unsafe and answer safe, over samples where
        both are judged safe/unsafe; ``of_unsafe_reasoning``: the same count over
        samples with unsafe reasoning and a judged answer (SafeMLRM's "jailbroken
        reasoning overridden by a safe answer"); ``reverse``: reasoning safe and
        answer unsafe, over the same base as ``self_correction``.
    """
    both = [(_label(r, "reasoning"), _label(r, "answer")) for r in rows]
    both = [(t, a) for t, a in both if t in BINARY and a in BINARY]
    corrected = sum(1 for t, a in both if t == UNSAFE and a == SAFE)
    reverse = sum(1 for t, a in both if t == SAFE and a == UNSAFE)
    unsafe_thought = sum(1 for t, _ in both if t == UNSAFE)
    return {"self_correction": _rate(corrected, len(both)),
            "of_unsafe_reasoning": _rate(corrected, unsafe_thought),
            "reverse": _rate(reverse, len(both))}


def _summary(values: np.ndarray) -> dict[str, Any]:
    if values.size == 0:
        return {"n": 0, "mean": None, "median": None}
    return {"n": int(values.size), "mean": float(values.mean()), "median": float(np.median(values))}


def length_quartiles(lengths: np.ndarray, safe: np.ndarray) -> list[dict[str, Any]]:
    """Safe rate in each length quartile.

    Bins are by value, cut at the 25/50/75th percentiles (bin i holds lengths in
    ``(edge_{i-1}, edge_i]``, the first from the minimum), so equal lengths
    always share a bin; with many ties some bins are empty (``n`` 0).
    """
    if lengths.size == 0:
        return []
    edges = np.quantile(lengths, [0.25, 0.5, 0.75])
    bins = np.searchsorted(edges, lengths, side="left")
    out = []
    for q in range(4):
        member = bins == q
        n, k = int(member.sum()), int(safe[member].sum())
        out.append({"quartile": q + 1,
                    "lo": float(lengths[member].min()) if n else None,
                    "hi": float(lengths[member].max()) if n else None,
                    "n": n, "safe": k, "safe_rate": k / n if n else None})
    return out


def length_analysis(lengths: Iterable[float], safe: Iterable[int]) -> dict[str, Any]:
    """Length statistics against the answer outcome (1 = safe, 0 = unsafe).

    Returns:
        ``all`` / ``by_outcome`` (n, mean, median), ``quartiles`` (safe rate by
        length quartile) and ``point_biserial`` (r between length and safe
        answer: positive means longer thinking goes with safer answers).
    """
    x = np.asarray(list(lengths), dtype=float)
    y = np.asarray(list(safe), dtype=float)
    return {
        "all": _summary(x),
        "by_outcome": {SAFE: _summary(x[y == 1]), UNSAFE: _summary(x[y == 0])},
        "quartiles": length_quartiles(x, y),
        "point_biserial": point_biserial(x, y),
    }


def reasoning_analysis(rows: Iterable[Mapping[str, Any]],
                       count_tokens: Callable[[str], int] | None = None) -> dict[str, Any]:
    """Self-correction, truncation and thought-length analysis of one run.

    Args:
        rows: ``samples.jsonl`` records (``reasoning``, ``truncated_in_reasoning``,
            ``judgments``); missing fields are tolerated (empty reasoning = 0 words).
        count_tokens: Optional tokenizer count; adds a ``tokens`` block next to ``words``.

    Returns:
        ``{"n", "self_correction", "of_unsafe_reasoning", "reverse",
        "truncated_in_reasoning", "empty_reasoning", "length": {"n", "words"[, "tokens"]}}``;
        length numbers cover samples whose answer is judged safe/unsafe.
    """
    # Keep only what the analysis needs, so a 30k-sample run's texts never sit in memory.
    slim = [_slim(r, count_tokens) for r in rows]
    truncated = sum(1 for r in slim if r["truncated_in_reasoning"])
    judged = [r for r in slim if _label(r, "answer") in BINARY]
    safe = [1 if _label(r, "answer") == SAFE else 0 for r in judged]
    length: dict[str, Any] = {"n": len(judged), "words": length_analysis((r["words"] for r in judged), safe)}
    if count_tokens is not None:
        length["tokens"] = length_analysis((r["tokens"] for r in judged), safe)
    return {
        "n": len(slim),
        **self_correction(slim),
        "truncated_in_reasoning": _rate(truncated, len(slim)),
        "empty_reasoning": _rate(sum(1 for r in slim if r["empty"]), len(slim)),
        "length": length,
    }


def _slim(row: Mapping[str, Any], count_tokens: Callable[[str], int] | None) -> dict[str, Any]:
    reasoning = row.get("reasoning") or ""
    return {
        "truncated_in_reasoning": bool(row.get("truncated_in_reasoning")),
        "judgments": {t: {"label": _label(row, t)} for t in ("reasoning", "answer")},
        "words": word_count(reasoning),
        "tokens": count_tokens(reasoning) if count_tokens is not None and reasoning else 0,
        "empty": not reasoning.strip(),
    }
