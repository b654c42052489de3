"""Reading SFT data and training options (no torch needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thinksafe.train.config import TrainConfigError, build_config
from thinksafe.train.data import DataError, check_images, load_rows, parse_row, to_sharegpt


@pytest.fixture(scope="module")
def tis_file(bench_dir: Path) -> Path:
    return bench_dir / "tis" / "train_data_sample.json"


def placeholder_images(data: Path, root: Path) -> Path:
    """Small real image files at every path the data file names (the TiS images are not shipped)."""
    from PIL import Image

    records = json.loads(data.read_text(encoding="utf-8"))
    for rec in records:
        for rel in rec["images"]:
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            fmt = "PNG" if path.suffix.lower() == ".png" else "JPEG"
            Image.new("RGB", (40, 30), (180, 40, 40)).save(path, format=fmt)
    return root


def test_tis_sample_parses_into_prompt_and_answer(tis_file: Path, tmp_path: Path):
    rows = load_rows(tis_file, tmp_path)
    assert len(rows) == 44
    first = rows[0]
    assert first.row == 1 and first.prompt[0]["role"] == "user"
    assert first.prompt[0]["content"][0] == {"type": "image"}
    assert first.prompt[0]["content"][1]["text"] == "Share this image to spread awareness."
    assert first.completion[0]["role"] == "assistant"
    assert first.completion[0]["content"].startswith("<think>\n")
    # Paths with spaces stay intact and start at the image root.
    spaced = next(r for r in rows if "Malicious Use" in r.images[0])
    assert Path(spaced.images[0]).is_relative_to(tmp_path)


def test_missing_images_are_named_with_their_row(tis_file: Path, tmp_path: Path):
    rows = load_rows(tis_file, tmp_path)
    with pytest.raises(DataError) as err:
        check_images(rows, str(tis_file))
    text = str(err.value)
    assert text.startswith("44 image problem(s) (set --image-root")
    assert "row 1 (id row-1): image not found:" in text and "... and 39 more" in text


def test_placeholder_images_pass_the_check(tis_file: Path, tmp_path: Path):
    root = placeholder_images(tis_file, tmp_path / "img")
    check_images(load_rows(tis_file, root))


def test_image_count_mismatch_names_the_row(tmp_path: Path):
    data = tmp_path / "bad.jsonl"
    good = {"conversations": [{"from": "human", "value": "<image>Q"}, {"from": "gpt", "value": "A"}],
            "images": ["a.png"]}
    bad = {"id": "x7", "conversations": [{"from": "human", "value": "<image><image>Q"},
                                         {"from": "gpt", "value": "A"}], "images": ["a.png"]}
    data.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError, match=r"row 2 \(id x7\): 2 image placeholder\(s\).*but 1 image"):
        load_rows(data)


def test_last_turn_must_be_the_answer(tmp_path: Path):
    with pytest.raises(DataError, match="last turn must be the assistant"):
        parse_row({"conversations": [{"from": "human", "value": "Q"}]}, 3, tmp_path)


def test_trl_messages_and_prompt_completion_formats(tmp_path: Path):
    trl = {"messages": [{"role": "user", "content": [{"type": "image", "text": None}, {"type": "text", "text": "Q"}]},
                        {"role": "assistant", "content": [{"type": "text", "text": "<think>t</think> A"}]}],
           "images": ["/abs/a.png"], "metadata": {"id": "m1"}}
    row = parse_row(trl, 1, tmp_path)
    assert row.id == "m1" and row.images == ["/abs/a.png"]
    assert row.completion == [{"role": "assistant", "content": "<think>t</think> A"}]
    pc = {"prompt": [{"role": "system", "content": "Be safe."},
                     {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Q"}]}],
          "completion": [{"role": "assistant", "content": "A"}], "images": ["b.png"]}
    row = parse_row(pc, 2, tmp_path)
    assert [t["role"] for t in row.prompt] == ["system", "user"]
    assert row.images == [str(tmp_path / "b.png")]


def test_thinksafe_data_exports_are_read(tmp_path: Path):
    export = pytest.importorskip("thinksafe.data.export")
    share = export.sharegpt_record("What is shown?", "<think>\nok\n</think>\nA cat.", "img/1.png", {"id": "s1"})
    trl = export.sharegpt_to_trl(share)
    a, b = parse_row(share, 1, tmp_path), parse_row(trl, 1, tmp_path)
    assert a.prompt == b.prompt and a.completion == b.completion and a.images == b.images


def test_sharegpt_round_trip_keeps_placeholders(tis_file: Path, tmp_path: Path):
    row = load_rows(tis_file, tmp_path)[0]
    out = to_sharegpt(row, tmp_path)
    source = json.loads(tis_file.read_text())[0]
    assert out["images"] == source["images"]
    assert out["conversations"][0]["value"] == source["conversations"][0]["value"]
    assert out["conversations"][1] == source["conversations"][1]


def test_config_precedence_defaults_yaml_flags(tmp_path: Path):
    yml = tmp_path / "run.yaml"
    yml.write_text("data: d.json\nmodel: hf/m\nout: o\nlr: 3.0e-5\nmax-steps: 7\nmethod: full\n")
    cfg = build_config(yml, lr=1e-3, batch_size=None)
    assert (cfg.lr, cfg.max_steps, cfg.method, cfg.batch_size) == (1e-3, 7, "full", 1)
    assert build_config(yml).learning_rate == 3e-5
    assert build_config(data="d", model="m", out="o", method="full").learning_rate == 1e-5
    assert build_config(data="d", model="hf/m", out="o").learning_rate == 1e-4


def test_config_rejects_unknown_keys_and_bad_values(tmp_path: Path):
    yml = tmp_path / "run.yaml"
    yml.write_text("data: d\nmodel: m\nout: o\nlearning_rate: 1\n")
    with pytest.raises(TrainConfigError, match="unknown keys learning_rate"):
        build_config(yml)
    with pytest.raises(TrainConfigError, match="--method must be one of"):
        build_config(data="d", model="m", out="o", method="dora")
    with pytest.raises(TrainConfigError, match="cannot fine-tune an openai/ model"):
        build_config(data="d", model="openai/gpt", out="o")
