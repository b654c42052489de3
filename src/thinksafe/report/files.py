"""``samples.jsonl`` and ``metrics.json``, rewritten from the store after every run."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..benchmarks.base import Result
from ..metrics.reasoning import reasoning_analysis


def sample_row(r: Result, bench=None) -> dict[str, Any]:
    """One line of samples.jsonl; ``outcome`` is the benchmark's per-sample verdict."""
    g = r.generation
    return {
        "id": r.sample.id, "benchmark": r.sample.benchmark, "category": r.sample.category,
        "prompt": r.sample.prompt, "images": r.sample.images,
        "raw": g.raw if g else None, "reasoning": g.reasoning if g else None, "answer": g.answer if g else None,
        "finish_reason": g.finish_reason if g else None,
        "truncated_in_reasoning": g.truncated_in_reasoning if g else False,
        "reasoning_source": g.reasoning_source if g else None,
        "completion_tokens": g.completion_tokens if g else None,
        "error": r.sample.error or (g.error if g else None),
        "judgments": {t: {"label": j.label, "score": j.score, "raw": j.raw, **({"extra": j.extra} if j.extra else {})}
                      for t, j in r.judgments.items()},
        "outcome": bench.protocol_outcome(r) if bench is not None else None,
    }


def _read_rows(path: Path):
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


@functools.lru_cache(maxsize=4)
def _token_counter(model: str) -> Callable[[str], int] | None:
    """Token counts with a local model's own tokenizer (loaded once per process); None for API models."""
    if not model.startswith("hf/"):
        return None
    try:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model[3:])
    except Exception:  # noqa: BLE001 - words are still reported
        return None
    return lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def _atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        write(f)
    tmp.replace(path)


def write_results(out: Path, bench, results: Callable[[], Iterable[Result]],
                  header: dict[str, Any]) -> dict[str, Any]:
    """Write samples.jsonl and metrics.json (streamed: two passes over the store)."""
    def write_samples(f) -> None:
        for r in results():
            f.write(json.dumps(sample_row(r, bench), ensure_ascii=False) + "\n")

    _atomic_write(out / "samples.jsonl", write_samples)
    metrics = {**header, **bench.protocol_metrics(results())}
    metrics["reasoning_analysis"] = reasoning_analysis(_read_rows(out / "samples.jsonl"),
                                                       _token_counter(header.get("model") or ""))
    _atomic_write(out / "metrics.json", lambda f: json.dump(metrics, f, indent=2, ensure_ascii=False))
    return metrics
