"""A self-contained HTML page for a run folder (``thinksafe report DIR --html``).

Everything that comes from a model, a judge or a benchmark file is escaped:
a jailbroken output may well contain markup.
"""

from __future__ import annotations

import json
from html import escape
from pathlib import Path
from typing import Any

MAX_SAMPLES = 2000  # keeps the page openable on 30k-sample runs; samples.jsonl has them all

_STYLE = """body{font-family:sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:right}td:first-child,th:first-child{text-align:left}
.unsafe{color:#b00}.safe{color:#070}pre{white-space:pre-wrap;background:#f6f6f6;padding:.5em}
details{margin:.4em 0;border-bottom:1px solid #eee}"""


def _pct(x: Any) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _targets_table(metrics: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{escape(t)}</td><td>{b['safe']}</td><td>{b['unsafe']}</td><td>{b['unparsed']}</td>"
        f"<td>{b['missing']}</td><td>{_pct(b['asr'])}</td></tr>"
        for t, b in metrics.get("targets", {}).items())
    return ("<table><tr><th>target</th><th>safe</th><th>unsafe</th><th>unparsed</th><th>missing</th>"
            f"<th>ASR</th></tr>{rows}</table>")


def _sample_html(row: dict[str, Any]) -> str:
    labels = " ".join(f"<span class='{escape(str(j.get('label')))}'>{escape(t)}: {escape(str(j.get('label')))}</span>"
                      for t, j in (row.get("judgments") or {}).items())
    parts = [f"<summary>{escape(str(row['id']))} · {escape(str(row.get('category') or ''))} · {labels}</summary>",
             f"<p><b>prompt</b></p><pre>{escape(str(row.get('prompt') or ''))}</pre>"]
    if row.get("error"):
        parts.append(f"<p class='unsafe'><b>error</b> {escape(str(row['error']))}</p>")
    for key in ("reasoning", "answer"):
        if row.get(key):
            parts.append(f"<p><b>{key}</b></p><pre>{escape(str(row[key]))}</pre>")
    if row.get("truncated_in_reasoning"):
        parts.append("<p class='unsafe'>cut off while thinking: no answer</p>")
    return f"<details>{''.join(parts)}</details>"


def write_html(run_dir: Path) -> Path:
    """Write ``run_dir/report.html`` from ``metrics.json`` and ``samples.jsonl``."""
    run_dir = Path(run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    title = f"{metrics.get('benchmark')} | {metrics.get('model')} | judge {metrics.get('judge')}"
    body = [f"<h1>{escape(title)}</h1>",
            f"<p>n={metrics.get('n')} · errors={metrics.get('errors')} · truncated in thinking="
            f"{metrics.get('truncated_in_reasoning')} · self-correction={metrics.get('self_correction')}</p>",
            _targets_table(metrics)]
    if isinstance(metrics.get("official"), dict):
        body.append(f"<h2>official metric</h2><pre>{escape(json.dumps(metrics['official'], indent=2))}</pre>")
    body.append("<h2>samples</h2>")
    with open(run_dir / "samples.jsonl", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i == MAX_SAMPLES:
                body.append(f"<p>… first {MAX_SAMPLES} samples shown; all are in samples.jsonl.</p>")
                break
            body.append(_sample_html(json.loads(line)))
    out = run_dir / "report.html"
    out.write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>{escape(title)}</title>"
                   f"<style>{_STYLE}</style></head><body>{''.join(body)}</body></html>", encoding="utf-8")
    return out
