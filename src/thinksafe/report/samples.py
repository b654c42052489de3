"""The sample browser's data: every sample of every run, merged by (benchmark, id).

Texts stay plain strings here; the page inserts them as text (never as markup).
Verdicts per target are ``safe`` / ``unsafe`` / other labels, where the answer's
verdict is the benchmark's own per-sample outcome (right/wrong behaviour for
awareness benchmarks, the answer label for safety benchmarks), as in
``thinksafe compare``.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..records import SAFE, UNPARSED, UNSAFE
from .runs import Run

BINARY = (SAFE, UNSAFE)
TARGET_NAMES = {"reasoning": "thinking", "answer": "answer", "full": "full output"}

# Flags of one run's output, the filters of the sample browser.
FLAGS = {
    "self_correction": "answer safe but thinking unsafe",
    "reverse": "thinking safe but answer unsafe",
    "answer_unsafe": "answer unsafe / wrong",
    "answer_safe": "answer safe / right",
    "thinking_unsafe": "thinking unsafe",
    "full_unsafe": "full output unsafe",
    "truncated": "truncated in thinking",
    "unparsed": "unparsed judge output",
    "error": "generation error",
}


@dataclass(frozen=True)
class ImageOptions:
    """How sample images get into the page.

    Attributes:
        mode: ``embed`` (JPEG thumbnails inside the page), ``link`` (relative
            links to the image files) or ``none``.
        thumb_px: Longest side of an embedded thumbnail.
        budget_mb: Embedded images stop at this many MB of the page; later ones are linked.
    """

    mode: str = "embed"
    thumb_px: int = 160
    budget_mb: float = 30.0


@dataclass
class SampleData:
    """What the page's sample browser gets, plus counts for the plots and the caption."""

    samples: list[dict[str, Any]] = field(default_factory=list)
    images: dict[str, dict[str, str]] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)
    category_counts: dict[tuple[str, int, str, str], Counter] = field(default_factory=lambda: defaultdict(Counter))
    """(benchmark, run index, target, category) -> verdict counts."""
    embedded: int = 0
    linked: int = 0
    missing: int = 0
    cut_texts: int = 0

    def page_json(self, runs: Sequence[Run]) -> dict[str, Any]:
        return {"runs": [r.label for r in runs], "flags": FLAGS, "targets": TARGET_NAMES,
                "benchmarks": list(self.categories), "categories": self.categories,
                "samples": self.samples, "images": self.images}


def verdicts(row: Mapping[str, Any]) -> dict[str, str]:
    """Verdict per target of one ``samples.jsonl`` record (absent targets left out)."""
    judgments = row.get("judgments") or {}
    out = {t: str((j or {}).get("label")) for t, j in judgments.items()}
    if row.get("outcome") is not None:
        out["answer"] = str(row["outcome"])
    return out


def flags(row: Mapping[str, Any], v: Mapping[str, str]) -> list[str]:
    """The :data:`FLAGS` that hold for one record with verdicts ``v``."""
    thinking, answer = v.get("reasoning"), v.get("answer")
    out = []
    if thinking == UNSAFE and answer == SAFE:
        out.append("self_correction")
    if thinking == SAFE and answer == UNSAFE:
        out.append("reverse")
    if answer == UNSAFE:
        out.append("answer_unsafe")
    if answer == SAFE:
        out.append("answer_safe")
    if thinking == UNSAFE:
        out.append("thinking_unsafe")
    if v.get("full") == UNSAFE:
        out.append("full_unsafe")
    if row.get("truncated_in_reasoning"):
        out.append("truncated")
    if UNPARSED in v.values():
        out.append("unparsed")
    if row.get("error"):
        out.append("error")
    return out


def _cap(text: Any, max_chars: int, data: SampleData) -> str:
    text = "" if text is None else str(text)
    if len(text) <= max_chars:
        return text
    data.cut_texts += 1
    return f"{text[:max_chars]}\n[… {len(text) - max_chars:,} more characters: see samples.jsonl]"


def _judgment(j: Mapping[str, Any], max_chars: int, data: SampleData) -> dict[str, Any]:
    """A judgment for the page: label, score, raw output, an ensemble's members and any other details."""
    out: dict[str, Any] = {"label": str(j.get("label")), "score": j.get("score"),
                           "raw": _cap(j.get("raw"), max_chars, data)}
    extra = dict(j.get("extra") or {})
    members = extra.pop("members", None)
    if isinstance(members, Mapping):
        out["members"] = {str(k): {"label": str(m.get("label")), "raw": _cap(m.get("raw"), max_chars, data)}
                          for k, m in members.items() if isinstance(m, Mapping)}
    if extra:
        out["details"] = _cap(json.dumps(extra, ensure_ascii=False, default=str), max_chars, data)
    return out


def _output(row: Mapping[str, Any], max_chars: int, data: SampleData) -> dict[str, Any]:
    v = verdicts(row)
    judges = {t: _judgment(j, max_chars, data) for t, j in (row.get("judgments") or {}).items()
              if isinstance(j, Mapping)}
    return {
        "reasoning": _cap(row.get("reasoning"), max_chars, data),
        "answer": _cap(row.get("answer"), max_chars, data),
        "error": _cap(row.get("error"), max_chars, data),
        "finish": str(row.get("finish_reason") or ""),
        "tokens": row.get("completion_tokens"),
        "verdicts": v, "judges": judges, "flags": flags(row, v),
    }


def collect(runs: Sequence[Run], benchmarks: Sequence[str], out_dir: Path, images: ImageOptions,
            max_chars: int = 20_000) -> SampleData:
    """Merge the samples of every run, benchmark by benchmark, in file order.

    A sample that only some runs have gets ``null`` for the others. ``changed``
    marks samples whose judged answer verdicts differ between runs.
    """
    data = SampleData()
    embedder = _Images(out_dir, images, data)
    for bench in benchmarks:
        merged: dict[str, dict[str, Any]] = {}
        cats: set[str] = set()
        for i, run in enumerate(runs):
            if bench not in run.benchmarks:
                continue
            for row in run.benchmarks[bench].rows():
                sid, cat = str(row.get("id")), str(row.get("category") or "")
                s = merged.get(sid)
                if s is None:
                    s = merged[sid] = {"benchmark": bench, "id": sid, "category": cat,
                                       "prompt": _cap(row.get("prompt"), max_chars, data),
                                       "images": [embedder.key(p, run.benchmarks[bench].dir)
                                                  for p in row.get("images") or []],
                                       "outputs": [None] * len(runs)}
                    cats.add(cat)
                out = s["outputs"][i] = _output(row, max_chars, data)
                for target, verdict in out["verdicts"].items():
                    data.category_counts[(bench, i, target, cat)][verdict] += 1
        for s in merged.values():
            answers = {o["verdicts"].get("answer") for o in s["outputs"] if o} & set(BINARY)
            s["changed"] = len(answers) > 1
        data.samples.extend(merged.values())
        data.categories[bench] = sorted(cats)
    embedder.finish()
    return data


class _Images:
    """Thumbnails (or links) of the sample images, each file once.

    Files are registered while the samples are read (:meth:`key`) and turned
    into thumbnails at the end (:meth:`finish`), several at a time: Pillow
    decodes and resizes outside the GIL.
    """

    CHUNK = 256

    def __init__(self, out_dir: Path, options: ImageOptions, data: SampleData):
        self.out_dir = Path(out_dir).resolve()
        self.options = options
        self.data = data
        self.keys: dict[Path, str] = {}

    def key(self, path: str, run_dir: Path) -> str:
        p = Path(path)
        p = (p if p.is_absolute() else run_dir / p).resolve()
        if p not in self.keys:
            self.keys[p] = f"i{len(self.keys)}"
        return self.keys[p]

    def finish(self) -> None:
        """Fill ``data.images``: thumbnails in order until the budget is spent, then links."""
        budget = int(self.options.budget_mb * 1024 * 1024) if self.options.mode == "embed" else 0
        paths = list(self.keys)
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            for start in range(0, len(paths), self.CHUNK):
                chunk = paths[start:start + self.CHUNK]
                found = [p.is_file() for p in chunk]
                uris = list(pool.map(self._thumbnail, chunk, found)) if budget > 0 else [None] * len(chunk)
                for path, exists, uri in zip(chunk, found, uris):
                    if uri is not None and len(uri) <= budget:
                        budget -= len(uri)
                        self.data.embedded += 1
                    else:
                        budget = 0 if uri is not None else budget  # over budget: every later image is linked
                        uri = None
                    self.data.images[self.keys[path]] = self._entry(path, exists, uri)

    def _thumbnail(self, path: Path, exists: bool) -> str | None:
        return thumbnail_uri(path, self.options.thumb_px) if exists else None

    def _entry(self, path: Path, exists: bool, uri: str | None) -> dict[str, str]:
        entry = {"name": path.name}
        if self.options.mode == "none":
            return entry
        if not exists:
            self.data.missing += 1
            return {**entry, "missing": "1"}
        if uri is not None:
            return {**entry, "src": uri}
        self.data.linked += 1
        return {**entry, "src": quote(os.path.relpath(path, self.out_dir))}


def thumbnail_uri(path: Path, px: int) -> str | None:
    """A JPEG thumbnail of the image as a ``data:`` URI (None for a file Pillow cannot read)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.draft("RGB", (px, px))  # JPEG: decode at reduced size
            im.thumbnail((px, px))
            if im.mode in ("RGBA", "LA", "P"):
                im = im.convert("RGBA")
                flat = Image.new("RGB", im.size, "white")
                flat.paste(im, mask=im.getchannel("A"))
                im = flat
            buf = io.BytesIO()
            im.convert("RGB").save(buf, "JPEG", quality=60, optimize=True)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
