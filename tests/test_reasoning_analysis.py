"""Thinking-versus-answer analysis on hand-built samples."""

from __future__ import annotations

import pytest
from scipy.stats import pointbiserialr

from thinksafe.metrics.reasoning import reasoning_analysis, word_count


def _row(reasoning, thought_label=None, answer_label=None, truncated=False):
    judgments = {}
    if thought_label:
        judgments["reasoning"] = {"label": thought_label, "score": None, "raw": ""}
    if answer_label:
        judgments["answer"] = {"label": answer_label, "score": None, "raw": ""}
    row = {"id": "x", "judgments": judgments, "truncated_in_reasoning": truncated}
    if reasoning is not None:
        row["reasoning"] = reasoning
    return row


ROWS = [
    _row("a b c", "unsafe", "safe"),            # 3 words, self-correction
    _row("a b c d e f", "safe", "unsafe"),      # 6 words, reverse
    _row("", "missing", "safe"),                # 0 words, thought not judged
    _row(" ".join(["x"] * 10), "unsafe", "unsafe"),  # 10 words
    _row(" ".join(["y"] * 20), "unsafe", "missing", truncated=True),  # no answer outcome
    _row(None, None, "unsafe"),                 # no reasoning field at all: 0 words
]


def test_self_correction_and_truncation():
    res = reasoning_analysis(ROWS)
    assert res["n"] == 6
    # both judged: rows 1, 2, 4 -> 1 self-correction, 1 reverse
    assert res["self_correction"] == {"count": 1, "n": 3, "rate": pytest.approx(1 / 3)}
    assert res["reverse"] == {"count": 1, "n": 3, "rate": pytest.approx(1 / 3)}
    # unsafe thoughts among both-judged: rows 1 and 4
    assert res["of_unsafe_reasoning"]["rate"] == pytest.approx(1 / 2)
    assert res["truncated_in_reasoning"] == {"count": 1, "n": 6, "rate": pytest.approx(1 / 6)}
    assert res["empty_reasoning"]["count"] == 2


def test_length_by_outcome_quartiles_and_correlation():
    words = reasoning_analysis(ROWS)["length"]["words"]
    # answers judged: rows 1 (3, safe), 2 (6, unsafe), 3 (0, safe), 4 (10, unsafe), 6 (0, unsafe)
    assert words["all"] == {"n": 5, "mean": pytest.approx(19 / 5), "median": 3.0}
    assert words["by_outcome"]["safe"] == {"n": 2, "mean": 1.5, "median": 1.5}
    assert words["by_outcome"]["unsafe"] == {"n": 3, "mean": pytest.approx(16 / 3), "median": 6.0}
    # sorted lengths 0 0 3 6 10 -> edges (25/50/75%) 0, 3, 6 -> bins {0,0} {3} {6} {10}
    q = words["quartiles"]
    assert [b["n"] for b in q] == [2, 1, 1, 1]
    assert [b["safe_rate"] for b in q] == [0.5, 1.0, 0.0, 0.0]
    assert (q[0]["lo"], q[0]["hi"], q[3]["lo"]) == (0.0, 0.0, 10.0)
    expected = pointbiserialr([1, 0, 1, 0, 0], [3, 6, 0, 10, 0]).statistic
    assert words["point_biserial"] == pytest.approx(expected)
    assert words["point_biserial"] < 0


def test_token_counts_when_given():
    res = reasoning_analysis(ROWS, count_tokens=len)  # characters as "tokens"
    tokens = res["length"]["tokens"]
    assert tokens["by_outcome"]["safe"]["mean"] == pytest.approx((5 + 0) / 2)
    assert "tokens" not in reasoning_analysis(ROWS)["length"]


def test_empty_and_thoughtless_runs():
    res = reasoning_analysis([])
    assert res["n"] == 0 and res["self_correction"]["rate"] is None
    assert res["length"]["words"]["quartiles"] == [] and res["length"]["words"]["point_biserial"] is None
    base = reasoning_analysis([_row("", None, "safe"), _row("", None, "unsafe")])
    assert base["length"]["words"]["point_biserial"] is None  # all lengths 0
    assert base["self_correction"]["n"] == 0
    assert word_count(None) == 0 and word_count("  two  words ") == 2


def test_deterministic():
    assert reasoning_analysis(ROWS) == reasoning_analysis(list(ROWS))
