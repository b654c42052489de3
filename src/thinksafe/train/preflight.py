"""Checks run on every row before training starts, so a bad row fails in
seconds with its number instead of crashing a multi-hour run at step 3000."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .collator import ImageTokenError, image_token_ids, load_images, render
from .data import DataError, TrainRow


@dataclass
class Preflight:
    """What the checks found; printed and saved in ``train_summary.json``."""

    rows: int = 0
    images: int = 0
    max_prompt_tokens: int = 0
    max_total_tokens: int = 0
    truncated_rows: list[int] = field(default_factory=list)
    """Rows whose answer end is cut by ``max_length`` (allowed; image tokens never are)."""

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "images": self.images, "max_prompt_tokens": self.max_prompt_tokens,
                "max_total_tokens": self.max_total_tokens, "truncated_rows": len(self.truncated_rows),
                "truncated_row_numbers": self.truncated_rows[:20]}


def prompt_tokens(processor: Any, prompt_text: str, images: list[Any], image_ids: set[int]) -> tuple[int, int, int]:
    """``(prompt length, image tokens, end of the last image token)`` of a rendered prompt.

    The end is the index just after the last image token (0 without images):
    a ``max_length`` below it would cut image tokens.
    """
    kwargs: dict[str, Any] = {"text": [prompt_text], "return_tensors": "pt", "add_special_tokens": False}
    if images:
        kwargs["images"] = [images]
    ids = processor(**kwargs)["input_ids"][0]
    positions = [i for i, t in enumerate(ids.tolist()) if t in image_ids]
    return int(ids.shape[0]), len(positions), (positions[-1] + 1 if positions else 0)


def check_row(processor: Any, row: TrainRow, max_length: int | None, image_ids: set[int]) -> tuple[int, int, int]:
    """Render and measure one row.

    Returns:
        ``(prompt tokens, answer tokens, image tokens)``.

    Raises:
        DataError: The template cannot render the row, or the images produce no image tokens.
        ImageTokenError: ``max_length`` would cut image tokens or leave no answer.
    """
    try:
        prompt_text, full_text = render(processor, row.prompt, row.completion)
    except Exception as exc:  # noqa: BLE001 - jinja and processor errors vary
        raise DataError(f"{row.where()}: chat template failed: {type(exc).__name__}: {exc}") from exc
    images = load_images(row.images)
    try:
        n_prompt, n_image, image_end = prompt_tokens(processor, prompt_text, images, image_ids)
    except Exception as exc:  # noqa: BLE001 - processors raise ValueError/IndexError on mismatches
        raise DataError(f"{row.where()}: the processor rejected the row ({len(images)} image(s)): "
                        f"{type(exc).__name__}: {exc}") from exc
    if images and image_ids and n_image == 0:
        raise DataError(f"{row.where()}: {len(images)} image(s) but no image tokens in the rendered prompt; "
                        "the chat template dropped the image placeholder")
    n_answer = len(processor.tokenizer(full_text[len(prompt_text):], add_special_tokens=False)["input_ids"])
    if max_length is not None and n_prompt >= max_length:
        what = (f"would cut image tokens ({n_image} in the prompt, the last at position {image_end - 1})"
                if max_length < image_end else "would leave no answer tokens")
        raise ImageTokenError(f"{row.where()}: the prompt is {n_prompt} tokens; --max-length {max_length} {what}. "
                              f"Use --max-length {n_prompt + n_answer} or more for this row")
    return n_prompt, n_answer, n_image


def preflight(processor: Any, rows: list[TrainRow], max_length: int | None) -> Preflight:
    """Render, tokenize and measure every row (images included).

    Raises:
        DataError / ImageTokenError: At the first row that cannot be trained on.
    """
    image_ids = image_token_ids(processor)
    report = Preflight(rows=len(rows))
    for row in rows:
        n_prompt, n_answer, _ = check_row(processor, row, max_length, image_ids)
        report.images += len(row.images)
        report.max_prompt_tokens = max(report.max_prompt_tokens, n_prompt)
        report.max_total_tokens = max(report.max_total_tokens, n_prompt + n_answer)
        if max_length is not None and n_prompt + n_answer > max_length:
            report.truncated_rows.append(row.row)
    return report
