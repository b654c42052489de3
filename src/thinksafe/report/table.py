"""Readable tables of a run's metrics (rich)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _ci(ci: list[float] | None) -> str:
    return "-" if not ci else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _flat(d: dict[str, Any], prefix: str = ""):
    """``(dotted key, value)`` of a nested dict (``by_split.random.f1``)."""
    for k, v in d.items():
        if isinstance(v, dict) and v:
            yield from _flat(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def print_run(metrics: dict[str, Any], folder: Path | str | None = None, console=None) -> None:
    """Per-target and per-category tables, plus the benchmark's official block."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    title = f"{metrics.get('benchmark')} | {metrics.get('model')} | judge {metrics.get('judge')}"
    t = Table(title=title, caption=f"n={metrics.get('n')}  errors={metrics.get('errors')}  "
              f"truncated in thinking={metrics.get('truncated_in_reasoning')}  "
              f"self-correction={metrics.get('self_correction')}" + (f"  -> {folder}" if folder else ""))
    for col in ("target", "safe", "unsafe", "unparsed", "missing", "ASR", "95% CI"):
        t.add_column(col, justify="right" if col != "target" else "left")
    for target, b in metrics.get("targets", {}).items():
        t.add_row(target, str(b["safe"]), str(b["unsafe"]), str(b["unparsed"]), str(b["missing"]),
                  _pct(b["asr"]), _ci(b["asr_ci95"]))
    console.print(t)
    cats = metrics.get("by_category") or {}
    if len(cats) > 1:
        c = Table(title="answer by category")
        for col in ("category", "safe", "unsafe", "unparsed", "missing", "ASR", "95% CI"):
            c.add_column(col, justify="right" if col != "category" else "left")
        for cat, blocks in cats.items():
            b = blocks.get("answer") or {}
            if b:
                c.add_row(cat, str(b["safe"]), str(b["unsafe"]), str(b["unparsed"]), str(b["missing"]),
                          _pct(b["asr"]), _ci(b["asr_ci95"]))
        console.print(c)
    official = metrics.get("official")
    if isinstance(official, dict):
        o = Table(title="official metric")
        o.add_column("metric")
        o.add_column("value", justify="right")
        for k, v in _flat(official):
            o.add_row(k, _pct(v) if isinstance(v, float) else str(v))
        console.print(o)
