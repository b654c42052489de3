"""Seed sources: where the (image, question[, reference answer]) pairs come from.

A source is named by a spec ``KIND:PATH[?key=value&...]``:

* ``jsonl:FILE`` - one JSON object a line: ``image`` (relative to the file)
  or ``images`` (a list, for several), ``question``, optional ``id``,
  ``reference_answer``, ``thought``, ``category``, ``harmful``.
* ``vlguard:train.json`` - VLGuard's training file. Harmful images give one
  seed per ``instruction``; safe images give one seed per ``safe_instruction``
  and one per ``unsafe_instruction``. The VLGuard response is the reference.
* ``spavl:FILE_OR_DIR`` - SPA-VL parquet file(s): ``image``, ``question``,
  ``chosen``, ``rejected``, ``class1/2/3``. No reference unless
  ``?reference=chosen`` (TiS's SPA-VL answers were teacher-written).
* ``tis:train_data.json`` - the released TiS file (ShareGPT); its answer is
  the reference and its thought the seed's own thought, regenerated under the
  build's policy unless ``?thought=keep``.
* ``mis:mis_train.json`` - the MIS training file (Ding et al., Hugging Face
  ``Tuwhy/MIS_Train``): ShareGPT-style rows with two or more images each; the
  label is the reference answer, and a thinking block in it (``<think>``,
  LLaVA-CoT stages) is kept as the thought unless ``?thought=regenerate``
  (see :func:`mis_seeds` for the layout read).
* ``run:DIR`` - the failures of a ``thinksafe eval`` run: rows of
  ``DIR/samples.jsonl`` (or ``DIR/*/samples.jsonl``) whose answer was judged
  ``unsafe`` (``?labels=unsafe,unparsed`` to widen).

Common options: ``images=DIR`` (root for relative image paths),
``limit=N`` (first N seeds of this source), ``sample=N`` (N seeds drawn at
random from the source, in file order; ``seed=S`` picks the draw, default 0),
``thought=keep|regenerate`` (a seed that carries its source's own thought
keeps it, with no caption or teacher request, or goes through the TiS stages
with its answer as the reference; default ``keep`` for ``mis`` and
``jsonl``, ``regenerate`` for ``tis``).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from ..errors import UsageError, UserError, require
from ..reasoning import split_text

IMAGE_TOKEN = "<image>"
THOUGHT_MODES = ("keep", "regenerate")
_KEEP_BY_DEFAULT = ("mis", "jsonl")
"""Source kinds whose own thought is kept unless ``?thought=regenerate``."""


class SourceError(UserError, ValueError):
    """A seed source that cannot be read; the message names the file."""


@dataclass
class Seed:
    """One (images, question) pair to turn into a training row."""

    id: str
    images: list[str]
    """Absolute paths of the images, in order (empty when the source row had none)."""
    question: str
    source: str
    reference_answer: str | None = None
    thought: str | None = None
    """The source's own reasoning towards its answer (TiS, MIS), if it has one."""
    keep_thought: bool = False
    """Use :attr:`thought` as it is (no caption or teacher request); set from ``?thought=``."""
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
        return _count(self, "limit")

    @property
    def sample(self) -> int | None:
        return _count(self, "sample")

    @property
    def keep_thought(self) -> bool:
        mode = self.options.get("thought") or ("keep" if self.kind in _KEEP_BY_DEFAULT else "regenerate")
        return mode == "keep"


def _count(src: SourceSpec, key: str) -> int | None:
    value = src.options.get(key)
    if not value:
        return None
    if not value.isdigit() or int(value) < 1:
        raise UsageError(f"--source {src.kind}:{src.path}: {key}={value!r} must be a positive whole number")
    return int(value)


def parse_spec(spec: str) -> SourceSpec:
    """Split ``KIND:PATH[?opts]``; raise UsageError on an unknown kind or option value."""
    kind, sep, rest = spec.partition(":")
    if not sep or not rest:
        raise UsageError(f"--source {spec!r} must look like KIND:PATH (kinds: {', '.join(ADAPTERS)})")
    if kind not in ADAPTERS:
        raise UsageError(f"unknown source kind {kind!r} in --source {spec!r}; known: {', '.join(ADAPTERS)}")
    path, _, query = rest.partition("?")
    src = SourceSpec(kind, Path(path).expanduser(), dict(parse_qsl(query)))
    if src.options.get("thought", "keep") not in THOUGHT_MODES:
        raise UsageError(f"--source {spec!r}: thought= must be keep or regenerate")
    src.limit, src.sample  # noqa: B018 - checks the values now, before anything is read
    return src


def load_seeds(specs: list[str], workdir: Path, limit: int | None = None) -> Iterator[Seed]:
    """Seeds from every source in order, ids made unique, at most ``limit`` in all."""
    seen: set[str] = set()
    count = 0
    for spec in specs:
        src = parse_spec(spec)
        if not src.path.exists():
            raise SourceError(f"--source {spec}: {src.path} does not exist")
        try:
            for seed in _from_source(src, workdir):
                if limit is not None and count >= limit:
                    return
                seed.id = _unique(seed.id, seen)
                seed.keep_thought = bool(seed.thought) and src.keep_thought
                count += 1
                yield seed
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise SourceError(f"--source {spec}: {src.path} is not valid JSON/UTF-8 ({exc})") from exc


def _from_source(src: SourceSpec, workdir: Path) -> Iterator[Seed]:
    """The source's seeds, its ``limit`` and ``sample`` applied (a sample keeps file order)."""
    seeds = itertools.islice(ADAPTERS[src.kind](src, workdir), src.limit)
    if src.sample is None:
        yield from seeds
        return
    rng = random.Random(int(src.options.get("seed") or 0))
    reservoir: list[tuple[int, Seed]] = []
    for n, seed in enumerate(seeds):  # reservoir sampling: memory stays at ``sample`` seeds
        if n < src.sample:
            reservoir.append((n, seed))
        elif (k := rng.randint(0, n)) < src.sample:
            reservoir[k] = (n, seed)
    yield from (seed for _, seed in sorted(reservoir, key=lambda pair: pair[0]))


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


def _resolve_all(images: list[str], root: Path) -> list[str]:
    return [_resolve(str(i), root) for i in images if i]


def _root(src: SourceSpec, default: Path) -> Path:
    return Path(src.options["images"]).expanduser() if src.options.get("images") else default


def strip_image_tokens(text: str) -> str:
    """The question without ``<image>`` placeholders."""
    return text.replace(IMAGE_TOKEN, " ").strip()


def image_list(value: Any) -> list[str]:
    """A row's image field (a path or a list of paths) as a list."""
    if isinstance(value, str):
        return [value] if value else []
    return [str(v) for v in value] if isinstance(value, list) else []


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
        return Seed(f"jsonl:{n}", [], "", "jsonl", error=f"bad_row: line {n + 1}: {exc}")
    seed_id = f"jsonl:{row.get('id', n)}"
    if not isinstance(row.get("question"), str) or not row["question"].strip():
        return Seed(seed_id, [], "", "jsonl", error=f"bad_row: line {n + 1} has no question")
    images = image_list(row.get("images")) or image_list(row.get("image"))
    return Seed(seed_id, _resolve_all(images, root), row["question"].strip(), "jsonl",
                reference_answer=row.get("reference_answer") or None, thought=row.get("thought") or None,
                category=row.get("category"), harmful=row.get("harmful"))


# ---- VLGuard ----------------------------------------------------------------------
_VLGUARD_KEYS = (("instruction", True), ("safe_instruction", False), ("unsafe_instruction", True))


def vlguard_seeds(src: SourceSpec, workdir: Path) -> Iterator[Seed]:
    items = json.loads(src.path.read_text(encoding="utf-8"))
    root = _unpacked_root(src, str(items[0].get("image", "")) if items else "", "train")
    for item in items:
        yield from _vlguard_item(item, root)


def _unpacked_root(src: SourceSpec, first_image: str, folder: str) -> Path:
    """The json's folder, or its ``folder/`` subfolder where the release's zip unpacks."""
    root = _root(src, src.path.parent)
    if "images" in src.options or not first_image:
        return root
    if not (root / first_image).exists() and (root / folder / first_image).exists():
        return root / folder
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
            yield Seed(f"vlguard:{item.get('id', '?')}:{k}", [image] if image else [], str(pair[key]).strip(),
                       "vlguard", reference_answer=pair.get("response") or None, category=category,
                       harmful=harmful, meta={"safe_image": safe_image, "instruction_key": key})


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
    return Seed(seed_id, [path] if path else [], str(row.get("question") or "").strip(), "spavl",
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


# ---- ShareGPT-style releases: TiS, MIS -----------------------------------------------
_HUMAN, _GPT = ("human", "user"), ("gpt", "assistant")


def conversation(row: dict[str, Any]) -> tuple[str, str]:
    """The first user turn and the first assistant turn of a ShareGPT (``conversations``:
    ``from``/``value``) or chat (``messages``: ``role``/``content``) row."""
    turns = row.get("conversations") or row.get("messages") or []
    pairs = [(t.get("from") or t.get("role"), t.get("value", t.get("content"))) for t in turns if isinstance(t, dict)]
    human = next((v for r, v in pairs if r in _HUMAN and isinstance(v, str)), "")
    gpt = next((v for r, v in pairs if r in _GPT and isinstance(v, str)), "")
    return human, gpt


def tis_seeds(src: SourceSpec, workdir: Path) -> Iterator[Seed]:
    rows = json.loads(src.path.read_text(encoding="utf-8"))
    root = _root(src, src.path.parent)
    for n, row in enumerate(rows):
        yield _tis_seed(row, n, root)


def _tis_seed(row: dict[str, Any], n: int, root: Path) -> Seed:
    human, gpt = conversation(row)
    images = image_list(row.get("images"))
    rel = images[0] if images else ""
    # Category = the image's folder (e.g. "Malicious Use/Security threats/weapon").
    category = "/".join(Path(rel).parts[1:-1] if rel.startswith("images/") else Path(rel).parts[:-1]) or None
    split = split_text(gpt)
    answer = split.answer
    if len(answer) > 1 and answer[0] == answer[-1] == '"':
        answer = answer[1:-1].strip()  # quoted answers are a known leftover of the release
    return Seed(f"tis:{n}", _resolve_all(images, root), strip_image_tokens(human), "tis",
                reference_answer=answer or None, thought=split.reasoning or None, category=category,
                meta={"image": rel})


def mis_seeds(src: SourceSpec, workdir: Path) -> Iterator[Seed]:
    """Seeds of the MIS training file (Hugging Face ``Tuwhy/MIS_Train``: ``mis_train.json`` and
    ``images.zip``).

    The dataset card gives no schema and the authors' repository (github.com/DripNowhy/MIS)
    holds only evaluation code, so the loader reads what the release is loaded as elsewhere
    (LLaMA-Factory ShareGPT): a JSON array (or JSON lines) of rows with ``conversations``
    (``from``/``value``) or ``messages`` (``role``/``content``), the images in ``images`` or
    ``image`` (a list or one path; else ``image_path1``, ``image_path2``, ...), optional ``id``,
    ``category`` and ``sub_category``. The user turn's ``<image>`` placeholders are removed
    from the question (and must match the images in number when present); the assistant turn
    is the label: its thinking block, if it has one, is the seed's thought and the rest the
    reference answer; a label without one is the answer whole. Relative image paths start
    at ``?images=DIR``, else the file's folder (or its ``images/`` subfolder, where the zip
    unpacks). Rows are not marked harmful or benign (the release does not say).
    """
    text = src.path.read_text(encoding="utf-8")
    rows = json.loads(text) if text.lstrip().startswith("[") else \
        [json.loads(line) for line in text.splitlines() if line.strip()]
    root = _unpacked_root(src, next(iter(_mis_images(rows[0])), "") if rows else "", "images")
    for n, row in enumerate(rows):
        yield _mis_seed(row, n, root)


def _mis_images(row: dict[str, Any]) -> list[str]:
    images = image_list(row.get("images")) or image_list(row.get("image"))
    if not images:
        images = [str(row[k]) for k in sorted((k for k in row if k.startswith("image_path") and k[10:].isdigit()),
                                              key=lambda k: int(k[10:])) if row[k]]
    return images


def _mis_seed(row: Any, n: int, root: Path) -> Seed:
    where = f"row {n + 1}"
    if not isinstance(row, dict):
        return Seed(f"mis:{n}", [], "", "mis", error=f"bad_row: {where} is not a JSON object")
    seed_id = f"mis:{row.get('id', n)}"
    human, gpt = conversation(row)
    images = _mis_images(row)
    if not human.strip() or not gpt.strip():
        return Seed(seed_id, [], "", "mis", error=f"bad_row: {where} has no user turn and assistant label "
                                                  "(conversations or messages)")
    tokens = human.count(IMAGE_TOKEN)
    if tokens and tokens != len(images):
        return Seed(seed_id, [], "", "mis", error=f"bad_row: {where} has {tokens} {IMAGE_TOKEN} placeholder(s) "
                                                  f"but {len(images)} image(s)")
    split = split_text(gpt)
    category = "/".join(str(row[k]) for k in ("category", "sub_category") if row.get(k)) or None
    return Seed(seed_id, _resolve_all(images, root), strip_image_tokens(human), "mis",
                reference_answer=split.answer or None, thought=split.reasoning or None, category=category,
                meta={"images": images})


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
    return Seed(f"run:{row.get('benchmark', 'run')}:{row.get('id')}", _resolve_all(row.get("images") or [], root),
                str(row.get("prompt") or "").strip(), "run", category=row.get("category") or None, harmful=True,
                meta={"benchmark": row.get("benchmark"), "run": str(root)})


ADAPTERS: dict[str, Callable[[SourceSpec, Path], Iterator[Seed]]] = {
    "jsonl": jsonl_seeds, "vlguard": vlguard_seeds, "spavl": spavl_seeds, "tis": tis_seeds, "mis": mis_seeds,
    "run": run_seeds,
}
