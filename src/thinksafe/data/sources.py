"""Seed sources: where the (image, question[, reference answer]) pairs come from.

A source is named by a spec ``KIND:PATH[?key=value&...]``:

* ``jsonl:FILE`` - one JSON object a line: ``image`` (relative to the file),
  ``question``, optional ``id``, ``reference_answer``, ``category``, ``harmful``.
* ``vlguard:train.json`` - VLGuard's training file. Harmful images give one
  seed per ``instruction``; safe images give one seed per ``safe_instruction``
  and one per ``unsafe_instruction``. The VLGuard response is the reference.
* ``spavl:FILE_OR_DIR`` - SPA-VL parquet file(s): ``image``, ``question``,
  ``chosen``, ``rejected``, ``class1/2/3``. No reference unless
  ``?reference=chosen`` (TiS's SPA-VL answers were teacher-written).
* ``tis:train_data.json`` - the released TiS file (ShareGPT); its answer is
  the reference, so the thought can be regenerated under another policy.
* ``run:DIR`` - the failures of a ``thinksafe eval`` run: rows of
  ``DIR/samples.jsonl`` (or ``DIR/*/samples.jsonl``) whose answer was judged
  ``unsafe`` (``?labels=unsafe,unparsed`` to widen).

Common options: ``images=DIR`` (root for relative image paths),
``limit=N`` (first N seeds of this source).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import UsageError, UserError, require
from ..reasoning import split_text

IMAGE_TOKEN = "<image>"


class SourceError(UserError, ValueError):
    """A seed source that cannot be read; the message names the file."""


@dataclass
class Seed:
    """One (image, question) pair to turn into a training row."""

    id: str
    image: str
    """Absolute path of the image ('' when the source row had none)."""
    question: str
    source: str
    reference_answer: str | None = None
    category: str | None = None
    harmful: bool | None = None
    """True for known-harmful requests, False for known-benign, None when unknown."""
    meta: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    """Set when the source row itself is unusable (reason code: detail)."""


@dataclass
class SourceSpec:
    kind: str
    path: Path
    options: dict[str, str]

    @property
    def limit(self) -> int | None:
        return int(self.options["limit"]) if self.options.get("limit") else None


def parse_spec(spec: str) -> SourceSpec:
    """Split ``KIND:PATH[?opts]``; raise UsageError on an unknown kind."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise UsageError(f"--source {spec!r} must look like KIND:PATH (kinds: {', '.join(ADAPTERS)})")
    if kind not in ADAPTERS:
        raise UsageError(f"unknown source kind {kind!r} in --source {spec!r}; known: {', '.join(ADAPTERS)}")
    path, _, query = rest.partition("?")
    return SourceSpec(kind, Path(path).expanduser(), dict(parse_qsl(query)))


def load_seeds(specs: list[str], workdir: Path, limit: int | None = None) -> Iterator[Seed]:
    """Seeds from every source in order, ids made unique, at most ``limit`` in all."""
    seen: set[str] = set()
    count = 0
    for spec in specs:
        src = parse_spec(spec)
        if not src.path.exists():
            raise SourceError(f"--source {spec}: {src.path} does not exist")
        try:
            for n, seed in enumerate(ADAPTERS[src.kind](src, workdir)):
                if src.limit is not None and n >= src.limit:
                    break
                if limit is not None and count >= limit:
                    return
                seed.id = _unique(seed.id, seen)
                count += 1
                yield seed
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SourceError(f"--source {spec}: {src.path} is not valid JSON/UTF-8 ({exc})") from exc


def _unique(seed_id: str, seen: set[str]) -> str:
    candidate, k = seed_id, 1
    while candidate in seen:
        k += 1
        candidate = f"{seed_id}#{k}"
    seen.add(candidate)
    return candidate


def _resolve(image: str, root: Path) -> str:
    if not image:
        return ""
    p = Path(image).expanduser()
    return str(p if p.is_absolute() else (root / p).resolve())


def _root(src: SourceSpec, default: Path) -> Path:
    return Path(src.options["images"]).expanduser() if src.options.get("images") else default


def strip_image_tokens(text: str) -> str:
    """The question without ``<image>`` placeholders."""
    return text.replace(IMAGE_TOKEN, " ").strip()


# ---- jsonl ------------------------------------------------------------------------
def jsonl_seeds(src: SourceSpec, workdir: Path) -> Iterator[Seed]:
    root = _root(src, src.path.parent)
    with open(src.path, encoding="utf-8") as f:
        for n, line in enumerate(f):
            if not line.strip():
                continue
            yield _jsonl_seed(line, n, root)


def _jsonl_seed(line: str, n: int, root: Path) -> Seed:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as exc:
        return Seed(f"jsonl:{n}", "", "", "jsonl", error=f"bad_row: line {n + 1}: {exc}")
    seed_id = f"jsonl:{row.get('id', n)}"
    if not isinstance(row.get("question"), str) or not row["question"].strip():
        return Seed(seed_id, "", "", "jsonl", error=f"bad_row: line {n + 1} has no question")
    return Seed(seed_id, _resolve(str(row.get("image") or ""), root), row["question"].strip(), "jsonl",
                reference_answer=row.get("reference_answer") or None, category=row.get("category"),
                harmful=row.get("harmful"))


# ---- VLGuard ----------------------------------------------------------------------
_VLGUARD_KEYS = (("instruction", True), ("safe_instruction", False), ("unsafe_instruction", True))


def vlguard_seeds(src: SourceSpec, workdir: Path) -> Iterator[Seed]:
    items = json.loads(src.path.read_text(encoding="utf-8"))
    root = _vlguard_root(src, items)
    for item in items:
        yield from _vlguard_item(item, root)


def _vlguard_root(src: SourceSpec, items: list[dict[str, Any]]) -> Path:
    """The json's folder, or its ``train/`` subfolder where the zip unpacks."""
    root = _root(src, src.path.parent)
    if "images" in src.options or not items:
        return root
    first = str(items[0].get("image", ""))
    if not (root / first).exists() and (root / "train" / first).exists():
        return root / "train"
    return root


def _vlguard_item(item: dict[str, Any], root: Path) -> Iterator[Seed]:
    image = _resolve(str(item.get("image") or ""), root)
    safe_image = bool(item.get("safe"))
    harmful_cat = "/".join(x for x in (item.get("harmful_category"), item.get("harmful_subcategory")) if x)
    for k, pair in enumerate(item.get("instr-resp") or []):
        for key, harmful in _VLGUARD_KEYS:
            if key not in pair:
                continue
            if safe_image:
                category = "safe" if key == "safe_instruction" else "safe image/unsafe instruction"
            else:
                category = harmful_cat or "harmful image"
            yield Seed(f"vlguard:{item.get('id', '?')}:{k}", image, str(pair[key]).strip(), "vlguard",
                       reference_answer=pair.get("response") or None, category=category, harmful=harmful,
                       meta={"safe_image": safe_image, "instruction_key": key})


# ---- SPA-VL -----------------------------------------------------------------------
def spavl_seeds(src: SourceSpec, workdir: Path) -> Iterator[Seed]:
    require(("pyarrow",), "the spavl source")
    import pyarrow.parquet as pq

    files = sorted(src.path.rglob("*.parquet")) if src.path.is_dir() else [src.path]
    image_dir = workdir / "images" / "spavl"
    wanted = src.options.get("class", "").lower()
    for file in files:
        for b, batch in enumerate(pq.ParquetFile(file).iter_batches(batch_size=64)):
            for i, row in enumerate(batch.to_pylist()):
                category = "/".join(str(row[c]) for c in ("class1", "class2", "class3") if row.get(c))
                if wanted and wanted not in category.lower():
                    continue
                yield _spavl_seed(row, f"spavl:{file.stem}:{b * 64 + i}", category, file.parent, image_dir,
                                  src.options.get("reference") == "chosen")


def _spavl_seed(row: dict[str, Any], seed_id: str, category: str, root: Path, image_dir: Path,
                use_chosen: bool) -> Seed:
    image = row.get("image")
    if isinstance(image, dict) and image.get("bytes"):
        path = _write_image(image["bytes"], image_dir)
    elif isinstance(image, dict):
        path = _resolve(str(image.get("path") or ""), root)
    else:
        path = _resolve(str(image or row.get("image_name") or ""), root)
    return Seed(seed_id, path, str(row.get("question") or "").strip(), "spavl",
                reference_answer=(row.get("chosen") or None) if use_chosen else None, category=category,
                harmful=True, meta={"image_name": row.get("image_name")})


def _write_image(data: bytes, folder: Path) -> str:
    """Save embedded image bytes once, named by content (parquet images have no path)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(data).hexdigest()[:20] + _image_ext(data))
    if not path.exists():
        path.write_bytes(data)
    return str(path.resolve())


def _image_ext(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data.startswith(b"GIF8"):
        return ".gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    return ".img"


# ---- released TiS file ------------------------------------------------------------
def tis_seeds(src: SourceSpec, workdir: Path) -> Iterator[Seed]:
    rows = json.loads(src.path.read_text(encoding="utf-8"))
    root = _root(src, src.path.parent)
    for n, row in enumerate(rows):
        yield _tis_seed(row, n, root)


def _tis_seed(row: dict[str, Any], n: int, root: Path) -> Seed:
    turns = row.get("conversations") or []
    human = next((t.get("value", "") for t in turns if t.get("from") == "human"), "")
    gpt = next((t.get("value", "") for t in turns if t.get("from") == "gpt"), "")
    images = row.get("images") or []
    rel = str(images[0]) if images else ""
    # Category = the image's folder (e.g. "Malicious Use/Security threats/weapon").
    category = "/".join(Path(rel).parts[1:-1] if rel.startswith("images/") else Path(rel).parts[:-1]) or None
    answer = split_text(gpt).answer
    if len(answer) > 1 and answer[0] == answer[-1] == '"':
        answer = answer[1:-1].strip()  # quoted answers are a known leftover of the release
    return Seed(f"tis:{n}", _resolve(rel, root), strip_image_tokens(human), "tis",
                reference_answer=answer or None, category=category, meta={"image": rel})


# ---- failures of an eval run ------------------------------------------------------
def run_seeds(src: SourceSpec, workdir: Path) -> Iterator[Seed]:
    labels = set((src.options.get("labels") or "unsafe").split(","))
    files = [src.path / "samples.jsonl"] if (src.path / "samples.jsonl").exists() \
        else sorted(src.path.glob("*/samples.jsonl"))
    if not files:
        raise SourceError(f"no samples.jsonl under {src.path} (is it a thinksafe eval run folder?)")
    for file in files:
        with open(file, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                label = ((row.get("judgments") or {}).get("answer") or {}).get("label")
                if label in labels:
                    yield _run_seed(row, file.parent)


def _run_seed(row: dict[str, Any], root: Path) -> Seed:
    images = row.get("images") or []
    meta: dict[str, Any] = {"benchmark": row.get("benchmark"), "run": str(root)}
    if len(images) > 1:
        meta["extra_images"] = images[1:]  # TiS rows have one image; the first is used
    return Seed(f"run:{row.get('benchmark', 'run')}:{row.get('id')}", _resolve(images[0] if images else "", root),
                str(row.get("prompt") or "").strip(), "run", category=row.get("category") or None, harmful=True,
                meta=meta)


ADAPTERS: dict[str, Callable[[SourceSpec, Path], Iterator[Seed]]] = {
    "jsonl": jsonl_seeds, "vlguard": vlguard_seeds, "spavl": spavl_seeds, "tis": tis_seeds, "run": run_seeds,
}
