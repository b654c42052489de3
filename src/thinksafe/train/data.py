"""Read SFT data into one shape and check it before any model is loaded.

Accepted files (a JSON array or JSON lines):

* ShareGPT, as LLaMA-Factory and the released Think-in-Safety ``train_data.json``
  use it: ``{"conversations": [{"from": "human", "value": "<image>Q"},
  {"from": "gpt", "value": "<think>\\n...\\n</think>\\nA"}], "images": [...]}``
  (``system`` may be a record key or a turn);
* the same with ``messages`` of ``{"role", "content": "<image>..."}``;
* TRL conversational data: ``messages`` whose user content is a list of
  ``{"type": "image"}`` / ``{"type": "text", "text": ...}`` parts, plus ``images``;
* TRL prompt-completion data: ``prompt`` and ``completion`` message lists.

Every row becomes a :class:`TrainRow`: the *prompt* is every turn before the
last assistant turn, the *completion* is that last assistant turn (the only
text the loss sees). Relative image paths start at ``image_root`` (default: the
data file's folder).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..data.export import DataError
from ..data.export import read_records as read_any

IMAGE_PLACEHOLDER = "<image>"
_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "system": "system"}


@dataclass
class TrainRow:
    """One training example in backend-neutral chat form."""

    row: int
    """1-based position in the data file (what error messages cite)."""
    id: str
    prompt: list[dict[str, Any]]
    """System/user (and earlier assistant) turns; user content is a list of parts."""
    completion: list[dict[str, Any]]
    """The single assistant turn the model learns, content as a string."""
    images: list[str] = field(default_factory=list)
    """Absolute image paths, in placeholder order."""

    def where(self, source: str | Path = "") -> str:
        return f"{source}, row {self.row} (id {self.id})" if source else f"row {self.row} (id {self.id})"

    def to_record(self) -> dict[str, Any]:
        """The dataset row handed to the trainer (the conversation as one JSON string)."""
        return {"row": self.row, "id": self.id, "images": list(self.images),
                "example": json.dumps({"prompt": self.prompt, "completion": self.completion}, ensure_ascii=False)}


def read_records(path: Path) -> list[dict[str, Any]]:
    """Records of a JSON array or JSON-lines file, each a JSON object.

    Raises:
        DataError: Missing file, bad JSON (with its line), or a non-object record.
    """
    records = read_any(path)
    for n, rec in enumerate(records, start=1):
        if not isinstance(rec, dict):
            raise DataError(f"{path}, row {n}: expected a JSON object, got {type(rec).__name__}")
    return records


def _split_placeholders(text: str) -> list[dict[str, Any]]:
    """``"<image>Q"`` -> ``[{"type": "image"}, {"type": "text", "text": "Q"}]``."""
    parts: list[dict[str, Any]] = []
    for k, chunk in enumerate(text.split(IMAGE_PLACEHOLDER)):
        if k:
            parts.append({"type": "image"})
        # Text is kept verbatim (LLaMA-Factory does the same); only blank pieces go.
        if chunk.strip():
            parts.append({"type": "text", "text": chunk})
    return parts


def _turn(role: str, content: Any, where: str) -> dict[str, Any]:
    """One turn in neutral form, counting images as parts."""
    if role not in _ROLES:
        raise DataError(f"{where}: unsupported role {role!r} (use human/user, gpt/assistant, system)")
    role = _ROLES[role]
    if isinstance(content, str):
        if role == "user":
            return {"role": role, "content": _split_placeholders(content)}
        if IMAGE_PLACEHOLDER in content:
            raise DataError(f"{where}: {IMAGE_PLACEHOLDER} in a {role} turn; images belong in user turns")
        return {"role": role, "content": content}
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") not in ("image", "text"):
                raise DataError(f"{where}: content parts must be {{'type': 'image'|'text'}}, got {part!r}")
            if part["type"] == "image":
                parts.append({"type": "image"})
            else:
                parts.append({"type": "text", "text": part.get("text") or ""})
        if role == "user":
            return {"role": role, "content": parts}
        if any(p["type"] == "image" for p in parts):
            raise DataError(f"{where}: image part in a {role} turn; images belong in user turns")
        return {"role": role, "content": "".join(p["text"] for p in parts)}
    raise DataError(f"{where}: turn content must be a string or a list of parts")


def _part_paths(messages: list[Any]) -> list[str]:
    """Image paths carried inside TRL-style parts (``{"type": "image", "path": ...}``)."""
    paths = []
    for m in messages:
        for part in m.get("content") if isinstance(m, dict) and isinstance(m.get("content"), list) else []:
            if isinstance(part, dict) and part.get("type") == "image":
                for key in ("path", "image", "url"):
                    if isinstance(part.get(key), str):
                        paths.append(part[key])
                        break
    return paths


def _turns(rec: dict[str, Any], where: str) -> tuple[list[dict[str, Any]], list[Any]]:
    """The record's turns (neutral form) and its raw image list."""
    if "conversations" in rec:
        raw = [(t.get("from") or t.get("role"), t.get("value", t.get("content"))) for t in rec["conversations"]]
    elif "messages" in rec:
        raw = [(t.get("role") or t.get("from"), t.get("content", t.get("value"))) for t in rec["messages"]]
    elif "prompt" in rec and "completion" in rec:
        raw = [(t.get("role"), t.get("content")) for t in list(rec["prompt"]) + list(rec["completion"])]
    else:
        raise DataError(f"{where}: no 'conversations', 'messages' or 'prompt'/'completion' key "
                        f"(keys: {', '.join(sorted(rec))})")
    turns = [_turn(str(role), content, where) for role, content in raw]
    if isinstance(rec.get("system"), str) and rec["system"].strip():
        turns.insert(0, {"role": "system", "content": rec["system"]})
    images = rec.get("images", rec.get("image", []))
    images = [images] if isinstance(images, str) else list(images or [])
    if not images:
        images = _part_paths(rec.get("messages") or list(rec.get("prompt") or []))
    return turns, images


def _count_images(turns: list[dict[str, Any]]) -> int:
    return sum(1 for t in turns if isinstance(t["content"], list) for p in t["content"] if p["type"] == "image")


def parse_row(rec: dict[str, Any], row: int, image_root: Path, source: str = "") -> TrainRow:
    """Turn one record into a :class:`TrainRow`.

    Raises:
        DataError: Unknown layout, no final assistant turn, or a number of
            image placeholders that differs from the number of images.
    """
    meta = rec.get("metadata") if isinstance(rec.get("metadata"), dict) else {}
    rid = str(rec.get("id") or meta.get("id") or f"row-{row}")
    where = f"{source}, row {row} (id {rid})" if source else f"row {row} (id {rid})"
    turns, images = _turns(rec, where)
    if not turns or turns[-1]["role"] != "assistant":
        raise DataError(f"{where}: the last turn must be the assistant's answer")
    if not str(turns[-1]["content"]).strip():
        raise DataError(f"{where}: empty assistant answer")
    placeholders = _count_images(turns)
    if placeholders != len(images):
        raise DataError(f"{where}: {placeholders} image placeholder(s) in the conversation but {len(images)} "
                        f"image(s) listed; they must match one to one")
    for bad in (p for p in images if not isinstance(p, str) or not p):
        raise DataError(f"{where}: image entries must be path strings, got {bad!r}")
    paths = [str(p if Path(p).is_absolute() else (image_root / p)) for p in images]
    return TrainRow(row=row, id=rid, prompt=turns[:-1], completion=turns[-1:], images=paths)


def load_rows(data: Path | str, image_root: Path | str | None = None) -> list[TrainRow]:
    """Read and check every row of a data file.

    Args:
        data: ShareGPT / TRL file (JSON array or JSONL).
        image_root: Where relative image paths start (default: the file's folder).

    Raises:
        DataError: The first bad row, named.
    """
    path = Path(data)
    root = Path(image_root) if image_root else path.resolve().parent
    rows = [parse_row(rec, n, root, str(path)) for n, rec in enumerate(read_records(path), start=1)]
    if not rows:
        raise DataError(f"{path}: no training rows")
    return rows


def check_images(rows: list[TrainRow], source: str = "") -> None:
    """Every image exists and opens.

    Raises:
        DataError: Listing up to five missing or unreadable images with their rows.
    """
    from PIL import Image

    problems = []
    for r in rows:
        for p in r.images:
            try:
                with Image.open(p) as im:
                    im.size  # noqa: B018 - reading the header is the check
            except FileNotFoundError:
                problems.append(f"{r.where(source)}: image not found: {p}")
            except Exception as exc:  # noqa: BLE001 - any decoder error means unusable
                problems.append(f"{r.where(source)}: cannot read image {p}: {type(exc).__name__}")
    if problems:
        more = f"\n  ... and {len(problems) - 5} more" if len(problems) > 5 else ""
        raise DataError(f"{len(problems)} image problem(s) (set --image-root to the folder the paths start from):\n  "
                        + "\n  ".join(problems[:5]) + more)


def to_sharegpt(row: TrainRow, image_root: Path | None = None) -> dict[str, Any]:
    """A row back in ShareGPT form (``<image>`` placeholders), for LLaMA-Factory.

    Image paths under ``image_root`` are written relative to it.
    """
    conversations = []
    system = None
    for turn in row.prompt + row.completion:
        if turn["role"] == "system":
            system = turn["content"] if isinstance(turn["content"], str) else _flatten(turn["content"])
            continue
        value = turn["content"] if isinstance(turn["content"], str) else _flatten(turn["content"])
        conversations.append({"from": "human" if turn["role"] == "user" else "gpt", "value": value})
    record: dict[str, Any] = {"conversations": conversations, "images": [_relative(p, image_root) for p in row.images]}
    if system:
        record["system"] = system
    return record


def _flatten(parts: list[dict[str, Any]]) -> str:
    return "".join(IMAGE_PLACEHOLDER if p["type"] == "image" else p["text"] for p in parts)


def _relative(path: str, root: Path | None) -> str:
    if root is None:
        return path
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return path


def released_source(cfg, echo) -> Any:
    """``cfg`` itself, or, when its ``data`` is a data-builder source (``mis:PATH``,
    ``vlguard:PATH``, ``spavl:PATH``, ``tis:PATH``...), ``cfg`` training on that source's rows
    as released, built into ``OUT/data`` first (no model is asked: the rows are kept as the
    source gives them, thoughts included; ``thinksafe data build`` regenerates thoughts)."""
    import dataclasses

    from ..data.sources import ADAPTERS

    kind, sep, _ = str(cfg.data).partition(":")
    if not sep or kind not in ADAPTERS or Path(cfg.data).exists():
        return cfg
    from ..data.build import BuildConfig, run_build
    from ..errors import UsageError

    folder = Path(cfg.out) / "data"
    stats = run_build(BuildConfig(sources=[cfg.data], captioner=None, teacher=None, out=folder, as_released=True,
                                  name=kind))
    kept = stats["counts"]["kept"]
    if not kept:
        raise UsageError(f"--data {cfg.data}: no usable row (see {folder / 'rejected.jsonl'})")
    echo(f"{cfg.data}: {kept} rows as released ({stats['counts']['rejected']} rejected) -> {folder / 'tis.json'}")
    return dataclasses.replace(cfg, data=str(folder / "tis.json"), image_root=None)

