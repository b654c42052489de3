"""Bad benchmark data, end to end: each problem is a clear message naming the file
and the row, the run goes on (or stops cleanly at an unreadable file), and
nothing already computed is lost."""

from __future__ import annotations

import csv
import json
import resource
import shutil
import struct
import zlib
from pathlib import Path

from helpers import cli, read_metrics, read_samples
from scripted_server import Reply, ScriptedServer
from thinksafe.benchmarks.files import image_defect

ANSWER = "<think>t</think>I cannot help with that."


def figstep_copy(figstep_dir: Path, root: Path, rows: int = 10) -> tuple[Path, Path, list[dict]]:
    """The first ``rows`` FigStep rows with their published images, in a folder of our own."""
    with open(figstep_dir / "question/safebench.csv", newline="", encoding="utf-8") as f:
        table = list(csv.DictReader(f))[:rows]
    (root / "question").mkdir(parents=True)
    (root / "images/SafeBench").mkdir(parents=True)
    for row in table:
        name = f"query_ForbidQI_{row['category_id']}_{row['task_id']}_6.png"
        shutil.copy(figstep_dir / "images/SafeBench" / name, root / "images/SafeBench" / name)
    csv_path = root / "question/safebench.csv"
    write_csv(csv_path, table)
    return root, csv_path, table


def write_csv(path: Path, table: list[dict], encoding: str = "utf-8") -> None:
    with open(path, "w", newline="", encoding=encoding) as f:
        w = csv.DictWriter(f, fieldnames=list(table[0]))
        w.writeheader()
        w.writerows(table)


def image_of(root: Path, row: dict) -> Path:
    return root / f"images/SafeBench/query_ForbidQI_{row['category_id']}_{row['task_id']}_6.png"


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width`` x ``height`` pixels (a few hundred bytes on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def eval_args(data: Path, url: str, out: Path, *extra) -> list:
    return ["eval", "--benchmark", "figstep", "--data", data, "--model", "openai/x", "--base-url", url, "--out", out,
            "--quiet", *extra]


def test_bad_images_and_rows_are_sample_errors_and_the_run_goes_on(figstep_dir, tmp_path):
    data, csv_path, table = figstep_copy(figstep_dir, tmp_path / "data")
    image_of(data, table[1]).write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    image_of(data, table[2]).write_bytes(b"")
    image_of(data, table[3]).write_bytes(png_header(20_000, 20_000))
    table[4]["instruction"] = ""
    table[5]["task_id"] = "five"
    write_csv(csv_path, table)
    with ScriptedServer(lambda r: Reply(ANSWER)) as server:
        cli(*eval_args(data, server.url, tmp_path / "run"))
    samples = list(read_samples(tmp_path / "run").values())
    errors = [s["error"] for s in samples]
    assert errors[1] == f"{csv_path}, row 3: image {image_of(data, table[1])} is corrupt or unreadable"
    assert errors[2] == f"{csv_path}, row 4: image {image_of(data, table[2])} is empty (0 bytes)"
    assert errors[3] == (f"{csv_path}, row 5: image {image_of(data, table[3])} claims 20000x20000 pixels, over the "
                         "89,478,485-pixel limit (a decompression bomb; not decoded)")
    assert errors[4] == f"{csv_path}, row 6: malformed row, missing instruction"
    assert errors[5].startswith(f"{csv_path}, row 7: malformed row, category_id/task_id must be integers")
    assert [e is None for e in errors] == [True] + [False] * 5 + [True] * 4
    assert len(server.log) == 5 and read_metrics(tmp_path / "run")["errors"] == 5


def test_decompression_bomb_is_refused_without_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_header(20_000, 20_000))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert "decompression bomb" in image_defect(bomb)
    # Decoding it would take 1.2 GB; the check reads the header only.
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50 * 1024


def test_image_paths_leaving_the_data_folder_are_refused(tmp_path):
    data = tmp_path / "siuo"
    (data / "images").mkdir(parents=True)
    _tiny_png(data / "images/ok.png")
    _tiny_png(tmp_path / "secret.png")  # a real image, outside the folder
    item = {"question_id": 0, "image": "ok.png", "question": "What should I do?", "category": "c",
            "safety_warning": "w", "reference_answer": "r"}
    items = [item, {**item, "question_id": 1, "image": "../../secret.png"}, "not an object"]
    (data / "siuo_gen.json").write_text(json.dumps(items))
    with ScriptedServer(lambda r: Reply(ANSWER)) as server:
        cli("eval", "--benchmark", "siuo", "--data", data, "--model", "openai/x", "--base-url", server.url,
            "--out", tmp_path / "run", "--judge", "refusal", "--quiet")
    rows = list(read_samples(tmp_path / "run").values())
    where = data.resolve() / "siuo_gen.json"
    assert rows[0]["error"] is None and len(server.log) == 1
    assert rows[1]["error"] == (f"{where}, item 1: image path 'images/../../secret.png' escapes the data folder "
                                f"{data.resolve()}")
    assert rows[2]["error"].startswith(f"{where}, item 2: malformed item, missing")


def test_absolute_image_path_outside_the_data_folder_is_refused(tmp_path):
    from thinksafe.benchmarks.files import attach_published
    from thinksafe.records import Sample

    (tmp_path / "data").mkdir()
    secret = _tiny_png(tmp_path / "secret.png")
    sample = Sample("1", "b", "p")
    attach_published(sample, tmp_path / "data", str(secret), "rows.csv, row 2")
    assert sample.error == (f"rows.csv, row 2: image path {str(secret)!r} escapes the data folder "
                            f"{(tmp_path / 'data').resolve()}")
    assert sample.images == []


def _tiny_png(path: Path) -> Path:
    from PIL import Image

    Image.new("RGB", (8, 8), "red").save(path)
    return path


def test_malformed_json_file_names_the_file_and_line(tmp_path):
    data = tmp_path / "siuo"
    data.mkdir()
    (data / "siuo_gen.json").write_text('[{"question_id": 1,\n  "image": "a.png",,}]')
    result = cli("eval", "--benchmark", "siuo", "--data", data, "--model", "openai/x", "--base-url",
                 "http://127.0.0.1:9/v1", "--out", tmp_path / "run", "--judge", "refusal", "--quiet", expect=2)
    message = " ".join(result.output.split())
    assert f"{data.resolve() / 'siuo_gen.json'}: not valid JSON (Expecting" in message and "line 2" in message


def test_wrong_encoding_stops_at_the_row_and_keeps_the_rows_before(figstep_dir, tmp_path):
    data, csv_path, table = figstep_copy(figstep_dir, tmp_path / "data")
    for row in table:  # long rows, so that the text layer decodes the file in several blocks
        row["question"] += " padding" * 300
    table[6]["instruction"] = "Steps to make crème brûlée illegally."
    write_csv(csv_path, table, encoding="latin-1")
    with ScriptedServer(lambda r: Reply(ANSWER)) as server:
        result = cli(*eval_args(data, server.url, tmp_path / "run"), expect=2)
        message = " ".join(result.output.split())
        assert f"{csv_path}, line 8: not UTF-8 text (byte 0xe8 at column" in message
        before = len(server.log)
        assert 0 < before < 7  # rows decoded before the bad block were evaluated and kept
        write_csv(csv_path, table)  # fixed: the run resumes where it stopped
        cli(*eval_args(data, server.url, tmp_path / "run", "--accept-changed-data"))
        assert len(server.log) == 10 and len({r["key"] for r in server.log}) == 10  # none asked twice
    assert read_metrics(tmp_path / "run")["n"] == 10


def test_replaced_benchmark_file_is_refused_unless_accepted(figstep_dir, tmp_path):
    data, csv_path, table = figstep_copy(figstep_dir, tmp_path / "data")
    with ScriptedServer(lambda r: Reply(ANSWER)) as server:
        cli(*eval_args(data, server.url, tmp_path / "run"))
        first = read_metrics(tmp_path / "run")
        table[0]["instruction"] = "Steps to do something else entirely."
        write_csv(csv_path, table)
        result = cli(*eval_args(data, server.url, tmp_path / "run"), expect=2)
        message = " ".join(result.output.split())
        assert f"{csv_path}: changed since the last run in {tmp_path / 'run'} (sha256" in message
        assert "--accept-changed-data" in message
        assert len(server.log) == 10 and read_metrics(tmp_path / "run") == first  # nothing touched
        result = cli(*eval_args(data, server.url, tmp_path / "run", "--accept-changed-data"))
        assert "benchmark files changed since this folder's last run" in " ".join(result.output.split())
    # FigStep sends the instruction as an image, whose bytes did not change: nothing to redo.
    assert len(server.log) == 10


def test_file_fingerprints_are_the_bytes_hashed_once_and_follow_a_changed_file(figstep_dir, tmp_path, monkeypatch):
    import builtins
    import hashlib

    from thinksafe.benchmarks import get_benchmark

    data, _, _ = figstep_copy(figstep_dir, tmp_path / "data")
    bench = get_benchmark("figstep")(data=data, subset="full")
    files = sorted(bench.files())
    whole = hashlib.sha256()
    for path in files:
        whole.update(path.name.encode())
        whole.update(path.read_bytes())
    opened: list[str] = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    assert bench.fingerprint() == whole.hexdigest()
    assert bench.file_fingerprints() == {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    assert sorted(opened) == sorted(str(p) for p in files)  # both from one read of each file
    with real_open(files[0], "a", encoding="utf-8") as f:
        f.write("\n")
    assert bench.file_fingerprints()[str(files[0])] == hashlib.sha256(files[0].read_bytes()).hexdigest()
