"""``thinksafe data validate`` on the released TiS sample and on broken files."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from helpers import cli
from thinksafe.data.validate import validate_file

# The counts listed in shared/benchmarks/tis/README.md.
TIS_QUIRKS = {"think_open_trailing_space": 13, "think_close_trailing_space": 14, "text_before_think": 1,
              "separator": 10, "quoted_answer": 2, "stray_quote": 2}


def test_tis_sample_quirks_and_missing_images(bench_dir, tmp_path):
    sample = bench_dir / "tis" / "train_data_sample.json"
    report_path = tmp_path / "report.json"
    result = cli("data", "validate", sample, "--image-root", tmp_path, "--json", report_path, expect=1)
    report = json.loads(report_path.read_text())
    assert report["rows"] == 44 and report["format"] == "sharegpt"
    assert {k: report["quirk_counts"].get(k) for k in TIS_QUIRKS} == TIS_QUIRKS
    assert report["error_counts"] == {"missing_image": 44}  # no other rule is broken
    prefix = [q for q in report["quirks"] if q["code"] == "text_before_think"]
    assert prefix == [{"row": 38, "code": "text_before_think",
                       "message": "text before <think>: '**Safety Chain of Thought**:'"}]
    assert sorted(q["row"] for q in report["quirks"] if q["code"] == "stray_quote") == [2, 15]
    assert sorted(q["row"] for q in report["quirks"] if q["code"] == "quoted_answer") == [35, 37]
    assert "missing_image 44" in result.output and "think_open_trailing_space 13" in result.output


def test_images_found_under_image_root(bench_dir, tmp_path):
    sample = bench_dir / "tis" / "train_data_sample.json"
    rows = json.loads(sample.read_text())
    for rel in rows[0]["images"] + rows[20]["images"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / rel)
    report = validate_file(sample, tmp_path)
    missing = {p.row for p in report.errors}
    assert len(missing) == 42 and 0 not in missing and 20 not in missing
    for row in rows:  # with every image present only quirks are left: exit code 0
        (tmp_path / row["images"][0]).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (4, 4)).save(tmp_path / row["images"][0])
    result = cli("data", "validate", sample, "--image-root", tmp_path)
    assert "errors: none" in result.output and "separator 10" in result.output


def _write(path: Path, rows) -> Path:
    path.write_text(json.dumps(rows))
    return path


def test_sharegpt_rule_violations_are_errors_with_rows(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    good = {"conversations": [{"from": "human", "value": "<image>Q"},
                              {"from": "gpt", "value": "<think>\nt\n</think>\nA"}], "images": ["a.png"]}
    rows = [
        good,
        {**good, "images": ["a.png", "a.png"]},                                   # 1 token, 2 images
        {**good, "conversations": good["conversations"][::-1]},                   # gpt first
        {**good, "conversations": good["conversations"][:1]},                     # no assistant turn
        {**good, "conversations": [{"from": "system", "value": "S"}, *good["conversations"]]},  # fine
        {**good, "conversations": [good["conversations"][0], {"from": "gpt", "value": "<image> A"}],
         "images": ["a.png", "a.png"]},                                           # image in the answer
        {**good, "conversations": [good["conversations"][0], {"from": "gpt", "value": "  "}]},
        {**good, "images": ["b.png"]},
        "not a row",
    ]
    report = validate_file(_write(tmp_path / "d.json", rows))
    got = sorted((p.row, p.code) for p in report.errors)
    assert got == [(1, "image_count"), (2, "bad_roles"), (3, "bad_roles"),
                   (5, "image_in_assistant"), (6, "empty_turn"), (7, "missing_image"), (8, "bad_row")]
    cli("data", "validate", tmp_path / "d.json", expect=1)


def test_trl_rows(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    good = {"messages": [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]},
                         {"role": "assistant", "content": [{"type": "text", "text": "<think>\nt\n</think>\nA"}]}],
            "images": [str(tmp_path / "a.png")]}
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(good) + "\n")
    cli("data", "validate", path)
    bad = {**good, "images": []}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    report = validate_file(path)
    assert report.format == "trl" and [(p.row, p.code) for p in report.errors] == [(1, "image_count")]
