"""Writing the dataset: LLaMA-Factory ShareGPT, TRL, LLaVA-CoT, stats and card.

Formats (one row each):

* ShareGPT (LLaMA-Factory, the released TiS layout)::

    {"conversations": [{"from": "human", "value": "<image>QUESTION"},
                       {"from": "gpt", "value": "<think>\\nTHOUGHT\\n</think>\\nANSWER"}],
     "images": ["PATH"], "metadata": {...}}

  A row with N images starts its human turn with N ``<image>`` tokens and lists
  N paths, in order.

* TRL (``SFTTrainer`` / ``DataCollatorForVisionLanguageModeling``)::

    {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "QUESTION"}]},
                  {"role": "assistant", "content": [{"type": "text", "text": "<think>..."}]}],
     "images": ["PATH"]}

* LLaVA-CoT: ShareGPT whose gpt turn is
  ``<SUMMARY>..</SUMMARY><CAPTION>..</CAPTION><REASONING>..</REASONING><CONCLUSION>..</CONCLUSION>``.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..reasoning import split_text
from .sources import IMAGE_TOKEN

USER_ROLES = {"human": "user", "gpt": "assistant", "system": "system", "observation": "tool",
              "function_call": "assistant"}
FROM_ROLES = {"user": "human", "assistant": "gpt", "system": "system", "tool": "observation"}


def dataset_info(name: str, file_name: str) -> dict[str, Any]:
    """The LLaMA-Factory ``dataset_info.json`` entry for a ShareGPT file."""
    return {name: {
        "file_name": file_name,
        "formatting": "sharegpt",
        "columns": {"messages": "conversations", "images": "images"},
        "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"},
    }}


def sharegpt_record(question: str, assistant: str, images: str | list[str],
                    metadata: dict[str, Any] | None = None) -> dict[str, Any]:
    """One ShareGPT row: one image token per image at the start of the human turn."""
    images = [images] if isinstance(images, str) else list(images)
    record: dict[str, Any] = {
        "conversations": [{"from": "human", "value": IMAGE_TOKEN * len(images) + question},
                          {"from": "gpt", "value": assistant}],
        "images": images,
    }
    if metadata:
        record["metadata"] = metadata
    return record


# ---- conversions --------------------------------------------------------------------
def _parts(text: str) -> list[dict[str, Any]]:
    """Typed content parts from text with ``<image>`` placeholders, in order."""
    parts: list[dict[str, Any]] = []
    pieces = text.split(IMAGE_TOKEN)
    for i, piece in enumerate(pieces):
        if i:
            parts.append({"type": "image", "text": None})
        if piece.strip():
            parts.append({"type": "text", "text": piece.strip()})
    return parts


def sharegpt_to_trl(record: dict[str, Any]) -> dict[str, Any]:
    """ShareGPT row -> TRL conversational row (image parts where the tokens were).

    Image parts carry ``"text": None`` so that every part has the same keys
    (an Arrow table needs one struct type per column).
    """
    messages = []
    for turn in record.get("conversations") or []:
        role = USER_ROLES.get(turn.get("from"), turn.get("from"))
        value = turn.get("value") or ""
        content = _parts(value) if role == "user" else [{"type": "text", "text": value}]
        messages.append({"role": role, "content": content})
    out = {"messages": messages, "images": list(record.get("images") or [])}
    if "metadata" in record:
        out["metadata"] = record["metadata"]
    return out


def trl_to_sharegpt(record: dict[str, Any]) -> dict[str, Any]:
    """TRL row -> ShareGPT row (image parts become ``<image>`` tokens)."""
    turns = []
    for m in record.get("messages") or []:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(IMAGE_TOKEN if p.get("type") == "image" else (p.get("text") or "") for p in content)
        turns.append({"from": FROM_ROLES.get(m.get("role"), m.get("role")), "value": content or ""})
    out = {"conversations": turns, "images": [_image_path(i) for i in record.get("images") or []]}
    if "metadata" in record:
        out["metadata"] = record["metadata"]
    return out


def _image_path(image: Any) -> str:
    return image.get("path") or "" if isinstance(image, dict) else str(image)


_SUMMARY = {
    "answer": "I will look at the image, check the question against the safety policy, and answer it directly.",
    "refuse": "I will look at the image, check the request against the safety policy, and explain why I "
              "cannot help with it.",
    "safe_complete": "I will look at the image, check the request against the safety policy, and answer only "
                     "its safe part, with safeguards.",
}


def to_llavacot(record: dict[str, Any]) -> dict[str, Any]:
    """ShareGPT row with a think turn -> the same row with LLaVA-CoT stage tags.

    REASONING is the thought and CONCLUSION the answer. CAPTION is the builder's
    caption when the row carries one in its metadata, else the thought's first
    sentence about the image; SUMMARY states the plan for the row's decision.
    """
    meta = record.get("metadata") or {}
    turns = []
    for turn in record.get("conversations") or []:
        if turn.get("from") == "gpt":
            split = split_text(turn.get("value") or "")
            turn = {**turn, "value": llavacot_text(split.reasoning, split.answer, meta.get("caption"),
                                                   meta.get("action"))}
        turns.append(turn)
    return {**record, "conversations": turns}


def llavacot_text(thought: str, answer: str, caption: str | None = None, action: str | None = None) -> str:
    sentences = re.split(r"(?<=[.!?])\s+", thought.strip())
    summary = _SUMMARY.get(action or "") or (sentences[0] if sentences else "")
    if not caption:
        caption = next((s for s in sentences if "image" in s.lower()), "The image accompanies the question.")
    return (f"<SUMMARY>{summary.strip()}</SUMMARY>\n\n<CAPTION>{caption.strip()}</CAPTION>\n\n"
            f"<REASONING>{thought.strip()}</REASONING>\n\n<CONCLUSION>{answer.strip()}</CONCLUSION>")


# ---- reading and writing files ------------------------------------------------------
class DataError(UserError, ValueError):
    """A data file or row that cannot be used; the message names the file and row."""


def read_records(path: Path) -> list[Any]:
    """Rows of a JSON array or JSONL file (not checked further).

    Raises:
        DataError: Missing file, or bad JSON (naming the line for JSONL).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON: {exc}") from exc
    records = []
    for n, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}, line {n}: not valid JSON: {exc}") from exc
    return records


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_trl(records: list[dict[str, Any]], out: Path, image_root: Path | None = None) -> dict[str, Any]:
    """Write ``train.jsonl`` and, when ``datasets`` is installed and every image
    exists, an HF dataset folder ``hf/`` and ``train.parquet`` with the image
    bytes embedded (so the dataset moves without its image folder).

    Returns:
        What was written, and why the HF copy was skipped if it was.
    """
    out.mkdir(parents=True, exist_ok=True)
    rows = [_absolute_images(r, image_root) for r in records]
    write_jsonl(out / "train.jsonl", rows)
    written: dict[str, Any] = {"jsonl": str(out / "train.jsonl"), "rows": len(rows)}
    missing = [p for r in rows for p in r["images"] if not Path(p).is_file()]
    if not rows:
        written["hf_skipped"] = "no rows to export"
        return written
    if missing:
        written["hf_skipped"] = f"{len(missing)} image file(s) missing, e.g. {missing[0]}"
        return written
    try:
        _write_hf(rows, out)
    except ImportError:
        written["hf_skipped"] = "the datasets package is not installed (pip install 'thinksafe[hf]')"
        return written
    written.update(hf=str(out / "hf"), parquet=str(out / "train.parquet"))
    return written


def _absolute_images(record: dict[str, Any], root: Path | None) -> dict[str, Any]:
    images = [str(p if Path(p).is_absolute() or root is None else (root / p).resolve())
              for p in map(_image_path, record.get("images") or [])]
    return {**record, "images": images}


def _write_hf(rows: list[dict[str, Any]], out: Path) -> None:
    import tempfile

    import datasets

    def gen() -> Iterator[dict[str, Any]]:
        for r in rows:
            meta = r.get("metadata") or {}
            yield {"messages": r["messages"], "id": str(meta.get("id", "")),
                   "images": [{"bytes": Path(p).read_bytes(), "path": Path(p).name} for p in r["images"]]}

    features = datasets.Features({
        "messages": datasets.List({"role": datasets.Value("string"), "content": datasets.List(
            {"type": datasets.Value("string"), "text": datasets.Value("string")})}),
        "images": datasets.List(datasets.Image()),
        "id": datasets.Value("string"),
    })
    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as cache:
        ds = datasets.Dataset.from_generator(gen, features=features, cache_dir=cache)
        ds.save_to_disk(str(out / "hf"))
        ds.to_parquet(str(out / "train.parquet"))


# ---- stats and card -----------------------------------------------------------------
def length_stats(values: list[int]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "mean": None, "median": None, "p90": None, "min": None, "max": None}
    ordered = sorted(values)
    return {"n": len(values), "mean": round(statistics.fmean(values), 1), "median": statistics.median(values),
            "p90": ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))], "min": ordered[0], "max": ordered[-1]}


def compute_stats(kept: list[dict[str, Any]], rejected: list[dict[str, Any]], header: dict[str, Any]
                  ) -> dict[str, Any]:
    """stats.json: counts by source, category, decision; lengths; rejections."""
    metas = [r["metadata"] for r in kept]
    return {
        **header,
        "counts": {"seeds": len(kept) + len(rejected), "kept": len(kept), "rejected": len(rejected)},
        "by_source": dict(Counter(m["source"] for m in metas)),
        "by_category": dict(Counter(m.get("category") or "none" for m in metas)),
        "by_decision": dict(Counter(m.get("decision") or "none" for m in metas)),
        "by_section": dict(Counter(m.get("section") or "none" for m in metas)),
        "thought_words": length_stats([m["thought_words"] for m in metas]),
        "answer_words": length_stats([m["answer_words"] for m in metas]),
        "rejected_by_reason": dict(Counter(r["reason"] for r in rejected)),
        "rejected_by_filter": dict(Counter(r["filter"] for r in rejected)),
        "rejected_by_source": dict(Counter(r["source"] for r in rejected)),
    }


def _table(title: str, counts: dict[str, Any]) -> str:
    if not counts:
        return f"**{title}:** none\n"
    rows = "\n".join(f"| {k} | {v} |" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    return f"**{title}**\n\n| value | rows |\n|---|---|\n{rows}\n"


def dataset_card(stats: dict[str, Any], name: str) -> str:
    """README.md for the output folder (Hugging Face dataset card layout)."""
    c, p, t = stats["counts"], stats["policy"], stats["thought_words"]
    models = stats["models"]
    if stats.get("as_released"):
        how = ("Built with `thinksafe data build --as-released`: each source's own rows as released, no model "
               "asked and nothing filtered but unusable inputs. The assistant turn is the source's answer, after "
               "`<think>\\nTHOUGHT\\n</think>\\n` when the source has its own thought.")
        model_line = "- models: none (as released)"
    else:
        how = ("Built with `thinksafe data build`, following the Think-in-Safety recipe: the image is captioned, a "
               "text reasoning model (the teacher) reasons about the caption and the question under a written "
               "safety policy, categorises the request (Allowed / Disallowed / Safe Completion), and writes or "
               "reasons towards the answer. The assistant turn is `<think>\\nTHOUGHT\\n</think>\\nANSWER`.")
        model_line = (f"- captioner: `{models['captioner']}`; teacher: `{models['teacher']}`; "
                      f"judge: `{models['judge']}`")
    # The configs entry points the Hub viewer at the parquet copy, when there is one.
    configs = ["configs:", "- config_name: default", "  data_files: trl/train.parquet"] \
        if "parquet" in stats.get("trl", {}) else []
    return "\n".join([
        "---",
        "task_categories: [image-text-to-text]",
        "tags: [safety, multimodal, reasoning, think-in-safety, thinksafe]",
        *configs,
        "---",
        f"# {name}: safety-oriented thinking data",
        "",
        "Content warning: the questions include harmful requests, by design.",
        "",
        how,
        "",
        f"- rows: **{c['kept']}** kept of {c['seeds']} seeds ({c['rejected']} rejected, see `rejected.jsonl`)",
        f"- policy: `{p['name']}` v{p['version']}, sha256 `{p['sha256']}`",
        model_line,
        f"- prompts: {', '.join(stats['prompts'].values())}",
        f"- thought length (words): mean {t['mean']}, median {t['median']}, p90 {t['p90']}, "
        f"min {t['min']}, max {t['max']}",
        "",
        "## Files",
        "",
        f"- `tis.json`: LLaMA-Factory ShareGPT; register it with `dataset_info.json` (dataset name `{name}`).",
        "- `trl/train.jsonl`: TRL conversational format (`messages` with typed parts, `images` as paths); "
        "`trl/hf/` (`datasets.load_from_disk`) and `trl/train.parquet` embed the images.",
        "- `rejected.jsonl`: every seed that was left out, with its reason; `stats.json`: the numbers below.",
        "",
        "## Counts",
        "",
        _table("By source", stats["by_source"]),
        _table("By decision", stats["by_decision"]),
        _table("By category", stats["by_category"]),
        _table("Rejected, by reason", stats["rejected_by_reason"]),
        f"Leakage: {stats['leakage']['rewritten']} mentions rewritten to \"the image\", "
        f"{stats['leakage']['rejected']} rows rejected.",
        "",
    ])
