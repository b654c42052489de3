"""Loss masking, truncation and the pre-training checks, on the tiny model's processor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")

from thinksafe.train.collator import IGNORE, ImageTokenError, SFTCollator  # noqa: E402
from thinksafe.train.data import load_rows  # noqa: E402
from thinksafe.train.preflight import preflight  # noqa: E402

from test_train_data import placeholder_images  # noqa: E402


@pytest.fixture(scope="module")
def processor(tiny_model_dir: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def tis_rows(bench_dir: Path, tmp_path_factory):
    data = bench_dir / "tis" / "train_data_sample.json"
    root = placeholder_images(data, tmp_path_factory.mktemp("tis-images"))
    return load_rows(data, root)


def labelled_text(processor, batch, i: int) -> str:
    ids, labels = batch["input_ids"][i], batch["labels"][i]
    return processor.tokenizer.decode(ids[labels != IGNORE], skip_special_tokens=False)


def test_labels_cover_exactly_the_assistant_turn(processor, tis_rows):
    rows = [tis_rows[0], tis_rows[20], tis_rows[43]]  # different lengths: padding is exercised
    batch = SFTCollator(processor)([r.to_record() for r in rows])
    assert batch["input_ids"].shape == batch["labels"].shape
    for i, row in enumerate(rows):
        # The answer text verbatim, then the template's end-of-turn token.
        assert labelled_text(processor, batch, i) == row.completion[0]["content"] + "<|im_end|>\n"
        # Nothing before the answer and no padding is trained on.
        mask = batch["attention_mask"][i].bool()
        assert (batch["labels"][i][~mask] == IGNORE).all()
        first = int((batch["labels"][i] != IGNORE).nonzero()[0])
        prompt = processor.tokenizer.decode(batch["input_ids"][i][:first])
        assert prompt.endswith("<|im_start|>assistant\n") and "<image>" in prompt


def test_truncation_cuts_the_answer_end_only(processor, tis_rows):
    batch = SFTCollator(processor, max_length=256)([tis_rows[0].to_record(), tis_rows[1].to_record()])
    assert batch["input_ids"].shape[1] == 256
    for i, row in enumerate(tis_rows[:2]):
        text = labelled_text(processor, batch, i)
        assert text and row.completion[0]["content"].startswith(text)
        image_id = processor.tokenizer.convert_tokens_to_ids("<image>")
        assert int((batch["input_ids"][i] == image_id).sum()) == 16


def test_collator_refuses_to_cut_image_tokens(processor, tis_rows):
    record = tis_rows[0].to_record()
    with pytest.raises(ImageTokenError, match=r"row 1 \(id row-1\): max_length 10 would cut .* image tokens"):
        SFTCollator(processor, max_length=10)([record])


def test_preflight_measures_rows_and_refuses_short_lengths(processor, tis_rows):
    report = preflight(processor, tis_rows, max_length=256)
    assert report.rows == 44 and report.images == 44
    assert report.max_prompt_tokens < 256 < report.max_total_tokens
    assert report.truncated_rows  # long TiS answers are cut, which is allowed
    with pytest.raises(ImageTokenError, match=r"row 1 \(id row-1\): the prompt is \d+ tokens; --max-length 16 "
                                              r"would cut image tokens \(16 in the prompt, the last at position \d+\)"):
        preflight(processor, tis_rows, max_length=16)
    with pytest.raises(ImageTokenError, match=r"--max-length 24 would leave no answer tokens\. Use --max-length"):
        preflight(processor, tis_rows, max_length=24)


def test_text_only_rows_with_a_system_turn_pass(processor, tmp_path: Path):
    data = tmp_path / "d.jsonl"
    rec = {"messages": [{"role": "system", "content": "Be safe."},
                        {"role": "user", "content": [{"type": "text", "text": "Q"}]},
                        {"role": "assistant", "content": "A"}], "images": []}
    data.write_text(json.dumps(rec) + "\n")
    rows = load_rows(data)
    assert preflight(processor, rows, 64).rows == 1
    batch = SFTCollator(processor)([rows[0].to_record()])
    assert labelled_text(processor, batch, 0) == "A<|im_end|>\n"


def test_answer_start_falls_back_to_measuring_the_prompt(processor, tis_rows):
    """Tokenizers that merge across the prompt/answer boundary are handled by encoding the prompt alone."""
    from thinksafe.train.collator import load_images, render

    row = tis_rows[5]
    prompt_text, full_text = render(processor, row.prompt, row.completion)
    images = load_images(row.images)
    collator = SFTCollator(processor)
    ids = processor(text=[full_text], images=[images], add_special_tokens=False)["input_ids"][0]
    clean = collator._answer_start(list(ids), full_text[len(prompt_text):], full_text, images)
    # A row whose tail does not match the answer's own tokens takes the fallback path.
    merged = collator._answer_start(list(ids) + [0], full_text[len(prompt_text):], full_text, images)
    prompt_ids = processor(text=[prompt_text], images=[images], add_special_tokens=False)["input_ids"][0]
    assert clean == merged == len(prompt_ids)
