"""Seed sources: jsonl, VLGuard, SPA-VL, the released TiS file, eval-run failures."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from PIL import Image

from thinksafe.data.sources import load_seeds, parse_spec


def seeds(spec: str, workdir: Path, limit: int | None = None):
    return list(load_seeds([spec], workdir, limit))


def png_bytes(color: str = "red") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), color).save(buf, format="PNG")
    return buf.getvalue()


def test_jsonl_resolves_images_and_flags_bad_rows(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "a.png").write_bytes(png_bytes())
    lines = [json.dumps({"id": 7, "image": "img/a.png", "question": " Q1 ", "reference_answer": "A",
                         "category": "fraud", "harmful": True}),
             "{not json", json.dumps({"image": "img/a.png"}), ""]
    (tmp_path / "s.jsonl").write_text("\n".join(lines))
    got = seeds(f"jsonl:{tmp_path / 's.jsonl'}", tmp_path)
    assert len(got) == 3
    first = got[0]
    assert (first.id, first.question, first.reference_answer, first.category, first.harmful) == \
        ("jsonl:7", "Q1", "A", "fraud", True)
    assert first.images == [str((tmp_path / "img" / "a.png").resolve())]
    assert got[1].error.startswith("bad_row: line 2") and got[2].error == "bad_row: line 3 has no question"


def test_vlguard_train_json_layout(tmp_path):
    (tmp_path / "train" / "HOD").mkdir(parents=True)
    (tmp_path / "train" / "HOD" / "x.jpg").write_bytes(png_bytes())
    items = [
        {"id": "HOD_1", "image": "HOD/x.jpg", "safe": False, "harmful_category": "risky behavior",
         "harmful_subcategory": "violence", "instr-resp": [{"instruction": "How to hurt?", "response": "No."}]},
        {"id": "Safe_2", "image": "HOD/x.jpg", "safe": True,
         "instr-resp": [{"safe_instruction": "What is it?", "response": "A knife."},
                        {"unsafe_instruction": "Stab how?", "response": "I can't help."}]},
    ]
    (tmp_path / "train.json").write_text(json.dumps(items))
    got = seeds(f"vlguard:{tmp_path / 'train.json'}", tmp_path)
    assert [(s.id, s.question, s.reference_answer, s.category, s.harmful) for s in got] == [
        ("vlguard:HOD_1:0", "How to hurt?", "No.", "risky behavior/violence", True),
        ("vlguard:Safe_2:0", "What is it?", "A knife.", "safe", False),
        ("vlguard:Safe_2:1", "Stab how?", "I can't help.", "safe image/unsafe instruction", True),
    ]
    assert all(s.images == [str((tmp_path / "train" / "HOD" / "x.jpg").resolve())] for s in got)


def test_spavl_parquet_with_embedded_images(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"image": {"bytes": png_bytes(c), "path": None}, "question": f"Q{c}", "chosen": "safe", "rejected": "bad",
             "class1": "Malicious Use", "class2": "Fraud or deceptive action", "class3": sub, "image_name": f"{c}.png"}
            for c, sub in (("red", "financial fraud"), ("blue", "disinformation"))]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "train-0.parquet")
    got = seeds(f"spavl:{tmp_path}", tmp_path / "work")
    assert [s.category for s in got] == ["Malicious Use/Fraud or deceptive action/financial fraud",
                                         "Malicious Use/Fraud or deceptive action/disinformation"]
    assert all(s.harmful and s.reference_answer is None and Path(s.images[0]).is_file() for s in got)
    assert Path(got[0].images[0]).read_bytes() == png_bytes("red")
    only = seeds(f"spavl:{tmp_path}?class=disinformation&reference=chosen", tmp_path / "work")
    assert [(s.question, s.reference_answer) for s in only] == [("Qblue", "safe")]


def test_released_tis_file(bench_dir, tmp_path):
    got = seeds(f"tis:{bench_dir / 'tis' / 'train_data_sample.json'}", tmp_path)
    assert len(got) == 44
    assert all("<image>" not in s.question and s.reference_answer for s in got)
    assert got[0].category == "bad_ads" and got[20].category == "Malicious Use/Security threats/weapon"
    assert got[37].reference_answer.startswith("I am unable")  # the wrapping quotes are dropped
    assert got[0].images[0].endswith("tis/images/bad_ads/b02f62a0-5ee9-4c5d-8a68-757a3bf13640.png")
    # its own thought rides along; the TiS stages regenerate it unless ?thought=keep
    assert got[0].thought and not got[0].keep_thought
    assert seeds(f"tis:{bench_dir / 'tis' / 'train_data_sample.json'}?thought=keep&limit=1", tmp_path)[0].keep_thought
    assert len(seeds(f"tis:{bench_dir / 'tis' / 'train_data_sample.json'}?limit=3", tmp_path)) == 3


def test_run_failures(tmp_path):
    rows = [{"id": "1-1", "benchmark": "mis", "prompt": "P1", "images": ["/abs/a.png", "/abs/b.png"], "category": "c",
             "judgments": {"answer": {"label": "unsafe"}}},
            {"id": "1-2", "benchmark": "figstep", "prompt": "P2", "images": ["b.png"],
             "judgments": {"answer": {"label": "safe"}}},
            {"id": "1-3", "benchmark": "figstep", "prompt": "P3", "images": [],
             "judgments": {"answer": {"label": "unparsed"}}}]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    got = seeds(f"run:{tmp_path / 'run'}", tmp_path)
    assert [(s.id, s.question, s.images, s.harmful) for s in got] == [("run:mis:1-1", "P1", ["/abs/a.png", "/abs/b.png"],
                                                                        True)]
    wide = seeds(f"run:{tmp_path / 'run'}?labels=unsafe,unparsed", tmp_path)
    assert [s.id for s in wide] == ["run:mis:1-1", "run:figstep:1-3"] and wide[1].images == []


def test_specs_limits_and_unique_ids(tmp_path):
    (tmp_path / "s.jsonl").write_text("".join(json.dumps({"id": "x", "image": "a.png", "question": f"q{i}"}) + "\n"
                                              for i in range(4)))
    got = seeds(f"jsonl:{tmp_path / 's.jsonl'}", tmp_path, limit=3)
    assert [s.id for s in got] == ["jsonl:x", "jsonl:x#2", "jsonl:x#3"]
    with pytest.raises(ValueError, match="unknown source kind"):
        parse_spec("csv:/x")
    with pytest.raises(ValueError, match="KIND:PATH"):
        parse_spec("jsonl")
    assert parse_spec("spavl:/d?limit=5&images=/i").options == {"limit": "5", "images": "/i"}


def test_sample_draws_the_same_seeds_in_file_order(tmp_path):
    (tmp_path / "s.jsonl").write_text("".join(json.dumps({"id": i, "image": "a.png", "question": f"q{i}"}) + "\n"
                                              for i in range(50)))
    spec = f"jsonl:{tmp_path / 's.jsonl'}"
    first = [s.id for s in seeds(spec + "?sample=5", tmp_path)]
    assert len(first) == 5 and first == sorted(first, key=lambda x: int(x.split(":")[1]))  # file order
    assert [s.id for s in seeds(spec + "?sample=5", tmp_path)] == first  # seed 0 by default: the same draw
    assert [s.id for s in seeds(spec + "?sample=5&seed=1", tmp_path)] != first
    assert len(seeds(spec + "?sample=80", tmp_path)) == 50  # fewer rows than asked: all of them
    assert [s.id for s in seeds(spec + "?limit=10&sample=10", tmp_path)] == [f"jsonl:{i}" for i in range(10)]
    with pytest.raises(ValueError, match="sample='0' must be a positive whole number"):
        parse_spec(spec + "?sample=0")
    with pytest.raises(ValueError, match="thought= must be keep or regenerate"):
        parse_spec(spec + "?thought=maybe")
