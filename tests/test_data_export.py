"""Format conversions: ShareGPT <-> TRL, LLaVA-CoT, and ``thinksafe data convert``."""

from __future__ import annotations

import json

from PIL import Image

from helpers import cli
from thinksafe.data.export import sharegpt_to_trl, to_llavacot, trl_to_sharegpt, write_trl
from thinksafe.reasoning import split_text


def test_sharegpt_trl_round_trip_keeps_image_positions():
    record = {"conversations": [{"from": "human", "value": "<image>Compare<image>these"},
                                {"from": "gpt", "value": "<think>\nt\n</think>\nA"}],
              "images": ["a.png", "b.png"], "metadata": {"id": "x"}}
    trl = sharegpt_to_trl(record)
    assert trl["messages"][0]["content"] == [{"type": "image", "text": None}, {"type": "text", "text": "Compare"},
                                             {"type": "image", "text": None}, {"type": "text", "text": "these"}]
    assert trl["messages"][1] == {"role": "assistant", "content": [{"type": "text", "text": "<think>\nt\n</think>\nA"}]}
    assert trl_to_sharegpt(trl) == record


def test_llavacot_uses_caption_and_decision_when_known():
    record = {"conversations": [{"from": "human", "value": "<image>Q"},
                                {"from": "gpt", "value": "<think>\nThe image shows a gun. I refuse.\n</think>\nNo."}],
              "images": ["a.png"], "metadata": {"caption": "A gun on a table.", "action": "refuse"}}
    value = to_llavacot(record)["conversations"][1]["value"]
    assert value.startswith("<SUMMARY>I will look at the image, check the request against the safety policy, "
                            "and explain why")
    assert "<CAPTION>A gun on a table.</CAPTION>" in value
    assert "<REASONING>The image shows a gun. I refuse.</REASONING>" in value
    assert value.endswith("<CONCLUSION>No.</CONCLUSION>")
    split = split_text(value)  # the project's own parser reads it back
    assert split.source == "llavacot" and split.answer == "No."


def test_convert_tis_sample(bench_dir, tmp_path):
    sample = bench_dir / "tis" / "train_data_sample.json"
    rows = json.loads(sample.read_text())
    cli("data", "convert", sample, "--to", "llavacot", "--out", tmp_path / "cot.json")
    cot = json.loads((tmp_path / "cot.json").read_text())
    assert len(cot) == 44
    original = split_text(rows[0]["conversations"][1]["value"])
    converted = split_text(cot[0]["conversations"][1]["value"])
    assert converted.answer == original.answer and original.reasoning in converted.reasoning
    result = cli("data", "convert", sample, "--to", "trl", "--out", tmp_path / "trl")
    assert "HF copy skipped: 44 image file(s) missing" in result.output.replace("\n", " ")
    trl = [json.loads(line) for line in (tmp_path / "trl" / "train.jsonl").read_text().splitlines()]
    assert trl[0]["images"] == [str((sample.parent / rows[0]["images"][0]).resolve())]
    cli("data", "convert", tmp_path / "trl" / "train.jsonl", "--to", "sharegpt", "--out", tmp_path / "back.json")
    back = json.loads((tmp_path / "back.json").read_text())
    assert back[0]["conversations"] == rows[0]["conversations"]
    cli("data", "convert", sample, "--to", "csv", "--out", tmp_path / "x", expect=2)


def test_convert_to_trl_embeds_images(tmp_path):
    import datasets

    Image.new("RGB", (8, 8), "red").save(tmp_path / "a.png")
    record = {"conversations": [{"from": "human", "value": "<image>Q"},
                                {"from": "gpt", "value": "<think>\nt\n</think>\nA"}], "images": ["a.png"]}
    (tmp_path / "d.json").write_text(json.dumps([record]))
    cli("data", "convert", tmp_path / "d.json", "--to", "trl", "--out", tmp_path / "trl")
    (tmp_path / "a.png").unlink()  # the HF copies carry the bytes themselves
    ds = datasets.load_dataset("parquet", data_files=str(tmp_path / "trl" / "train.parquet"), split="train")
    assert ds[0]["images"][0].size == (8, 8)
    assert datasets.load_from_disk(str(tmp_path / "trl" / "hf"))[0]["messages"][1]["content"][0]["text"] == \
        "<think>\nt\n</think>\nA"


def test_no_rows_writes_an_empty_jsonl_and_skips_the_hf_copy(tmp_path):
    written = write_trl([], tmp_path / "trl")
    assert written["rows"] == 0 and written["hf_skipped"] == "no rows to export"
    assert (tmp_path / "trl" / "train.jsonl").read_text() == ""
