"""Batch rows for SFT with the loss on the assistant answer only.

Why our own collator rather than TRL's prompt-completion one: TRL encodes the
prompt (with images) and the completion separately and glues the token ids
together, which leaves per-token vision tensors such as Mllama's
``cross_attention_mask`` at the prompt's length. Here the *whole* conversation
goes through the processor once (so every family's extra tensors match the
ids), and the prompt is masked by finding the answer's tokens at the end of
each row. Where the tokenizer merges across the boundary, the prompt is
encoded on its own to find its length instead.

Sequences longer than ``max_length`` lose the end of their answer; a cut that
would reach an image token is refused with the row named.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from ..errors import UserError

IGNORE = -100
# Tensors laid out (batch, sequence, ...) that must be cut with input_ids.
SEQUENCE_KEYS = ("input_ids", "attention_mask", "labels", "token_type_ids", "mm_token_type_ids",
                 "cross_attention_mask", "position_ids")


class ImageTokenError(UserError, ValueError):
    """Truncation or a template would separate images from their tokens."""


def image_token_ids(processor: Any) -> set[int]:
    """Ids of the tokens that stand for image content in ``input_ids``."""
    tok = processor.tokenizer
    ids = {getattr(processor, "image_token_id", None), getattr(tok, "image_token_id", None)}
    for name in ("image_token", "video_token"):
        token = getattr(processor, name, None) or getattr(tok, name, None)
        if isinstance(token, str) and token in tok.get_vocab():
            ids.add(tok.convert_tokens_to_ids(token))
    return {i for i in ids if isinstance(i, int)}


def _load_one(path: str) -> Any:
    from PIL import Image

    with Image.open(path) as im:
        return im.convert("RGB")


def load_images(paths: list[str]) -> list[Any]:
    """Open image files as RGB PIL images."""
    return [_load_one(p) for p in paths]


def render(processor: Any, prompt: list[dict], completion: list[dict]) -> tuple[str, str]:
    """``(prompt_text, full_text)`` through the model's own chat template.

    Raises:
        ValueError: The template renders the conversation so that the prompt is
            not a prefix of the whole (the answer cannot be located).
    """
    prompt_text = processor.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False)
    full_text = processor.apply_chat_template(prompt + completion, tokenize=False)
    if not full_text.startswith(prompt_text):
        raise ValueError("the chat template does not render the prompt as a prefix of the full conversation")
    eos = processor.tokenizer.eos_token
    if eos and eos not in full_text[len(prompt_text):]:
        # Templates that end an assistant turn with the next role tag (GLM-4.1V)
        # leave the answer open; the EOS teaches the model to stop, as
        # LLaMA-Factory's efficient_eos does.
        full_text += eos
    return prompt_text, full_text


class SFTCollator:
    """Turn dataset rows (see :meth:`TrainRow.to_record`) into model inputs and labels.

    Args:
        processor: The model's processor (tokenizer + image processor + chat template).
        max_length: Cut sequences to this many tokens (None: no cut).
    """

    def __init__(self, processor: Any, max_length: int | None = None, cache_images: int = 0):
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.max_length = max_length
        self.image_ids = image_token_ids(processor)
        # Small multi-epoch sets (the demo) decode the same files every step.
        self._load = lru_cache(maxsize=cache_images)(_load_one) if cache_images else _load_one

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        texts, answers, images = [], [], []
        for ex in examples:
            conv = json.loads(ex["example"])
            try:
                prompt_text, full_text = render(self.processor, conv["prompt"], conv["completion"])
            except ValueError as exc:
                raise ValueError(f"row {ex['row']} (id {ex['id']}): {exc}") from exc
            texts.append(full_text)
            answers.append(full_text[len(prompt_text):])
            images.append([self._load(p) for p in ex["images"]])
        batch = self._encode(texts, images)
        batch["labels"] = self._labels(batch, examples, texts, answers, images)
        if self.max_length is not None and batch["input_ids"].shape[1] > self.max_length:
            batch = self._truncate(batch, examples)
        return batch

    def _encode(self, texts: list[str], images: list[list[Any]]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"text": texts, "padding": True, "padding_side": "right",
                                  "return_tensors": "pt", "add_special_tokens": False}
        if any(images):
            kwargs["images"] = images
        return dict(self.processor(**kwargs))

    def _labels(self, batch: dict[str, Any], examples: list[dict], texts: list[str], answers: list[str],
                images: list[list[Any]]):
        """Copy of input_ids with everything but each row's answer set to -100."""
        import torch

        ids, mask = batch["input_ids"], batch["attention_mask"]
        labels = torch.full_like(ids, IGNORE)
        for i, answer in enumerate(answers):
            length = int(mask[i].sum())
            start = self._answer_start(ids[i, :length].tolist(), answer, texts[i], images[i])
            labels[i, start:length] = ids[i, start:length]
        return labels

    def _answer_start(self, row_ids: list[int], answer: str, full_text: str, images: list[Any]) -> int:
        """Index of the answer's first token in a row."""
        answer_ids = self.tokenizer(answer, add_special_tokens=False)["input_ids"]
        if answer_ids and row_ids[-len(answer_ids):] == answer_ids:
            return len(row_ids) - len(answer_ids)
        # The tokenizer merged across the prompt/answer boundary: measure the prompt.
        prompt_text = full_text[: len(full_text) - len(answer)]
        kwargs: dict[str, Any] = {"text": [prompt_text], "return_tensors": "pt", "add_special_tokens": False}
        if images:
            kwargs["images"] = [images]
        return int(self.processor(**kwargs)["attention_mask"].sum())

    def _truncate(self, batch: dict[str, Any], examples: list[dict]) -> dict[str, Any]:
        """Cut every sequence tensor to ``max_length``; refuse to cut image tokens."""
        ids = batch["input_ids"]
        for i, ex in enumerate(examples):
            kept = sum(int((ids[i, : self.max_length] == t).sum()) for t in self.image_ids)
            total = sum(int((ids[i] == t).sum()) for t in self.image_ids)
            if kept != total:
                raise ImageTokenError(
                    f"row {ex['row']} (id {ex['id']}): max_length {self.max_length} would cut "
                    f"{total - kept} of its {total} image tokens; raise --max-length")
        seq = ids.shape[1]
        for key in SEQUENCE_KEYS:
            value = batch.get(key)
            if value is not None and value.dim() >= 2 and value.shape[1] == seq:
                batch[key] = value[:, : self.max_length]
        return batch
