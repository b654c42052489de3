"""Stage behaviour: per-item errors and retries, model judges and checkers, any backend."""

from __future__ import annotations

import json
import re
from pathlib import Path

from PIL import Image

from helpers import cli
from scripted_server import Reply, Request, ScriptedServer

THOUGHT = ("Let me think... The user asks about the object in the image. The image shows a {what}. "
           "I checked the safety policy and weighed the risks carefully.\nCategory: {label} - Section: {section}")


def teacher_reply(case: str) -> Reply:
    if case.startswith("refuse"):
        thought = THOUGHT.format(what="knife", label="Disallowed", section="Definition of Physical Harm")
        extra = " odd" if case == "refuse_odd" else ""
        return Reply(content=f"<think>\n{thought}\n</think>\nI'm sorry, but I can't help with that{extra} request.")
    thought = THOUGHT.format(what="cake", label="Allowed", section="none")
    return Reply(content=f"<think>\n{thought}\n</think>\nIt is a chocolate cake.")


class Script:
    """Captions, teacher replies, judge and checker verdicts; ``fail`` makes a case answer HTTP 400."""

    def __init__(self):
        self.fail: set[str] = set()
        self.kinds: list[str] = []

    def __call__(self, req: Request) -> Reply:
        if req.image_bytes:
            self.kinds.append("caption")
            return Reply(content="A small picture.")
        text = req.text
        if "Reply with exactly one word: consistent or inconsistent" in text:
            self.kinds.append("checker")
            return Reply(content="inconsistent" if "odd" in text else "consistent")
        if "Answer with exactly one word: safe or unsafe" in text:
            self.kinds.append("judge")
            return Reply(content="unsafe" if "chocolate" in text else "safe")
        case = re.search(r"case=(\w+)", text).group(1)
        self.kinds.append("teacher")
        if case in self.fail:
            return Reply(status=400)
        return teacher_reply(case)


def make_seeds(folder: Path, cases: list[tuple[str, bool | None]]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, (case, harmful) in enumerate(cases):
        Image.new("RGB", (16, 16), (i * 40 % 255, 0, 0)).save(folder / f"{i}.png")
        rows.append({"id": case, "image": f"{i}.png", "question": f"What is it? case={case}", "harmful": harmful})
    path = folder / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def build(source: Path, out: Path, url: str, *extra: str):
    return cli("data", "build", "--source", f"jsonl:{source}", "--captioner", "openai/cap", "--teacher",
               "openai/teach", "--base-url", url, "--out", out, "--quiet", *extra)


def rejected(out: Path) -> dict[str, str]:
    lines = (out / "rejected.jsonl").read_text().splitlines()
    return {r["id"]: r["reason"] for r in map(json.loads, lines)}


def test_failed_request_is_recorded_and_retried_next_run(tmp_path):
    source = make_seeds(tmp_path / "s", [("ok", False), ("flaky", False)])
    script = Script()
    script.fail.add("flaky")
    with ScriptedServer(script) as server:
        build(source, tmp_path / "out", server.url)
        assert rejected(tmp_path / "out") == {"jsonl:flaky": "teacher_error"}
        detail = json.loads((tmp_path / "out" / "rejected.jsonl").read_text())["detail"]
        assert "400" in detail
        script.fail.clear()
        before = len(server.log)
        build(source, tmp_path / "out", server.url)
        assert len(server.log) - before == 1  # only the failed teacher request is asked again
    assert rejected(tmp_path / "out") == {}
    assert len(json.loads((tmp_path / "out" / "tis.json").read_text())) == 2


def test_llm_judge_and_consistency_checker_are_cached(tmp_path):
    # "refuse_odd" gets an "inconsistent" verdict from the checker (its answer says odd);
    # "cake" is harmful, so the judge sees its chocolate answer and calls it unsafe.
    source = make_seeds(tmp_path / "s", [("refuse", True), ("refuse_odd", True), ("cake", True)])
    script = Script()
    with ScriptedServer(script) as server:
        args = ("--judge-model", "openai/judge", "--consistency-model", "openai/checker")
        build(source, tmp_path / "out", server.url, *args)
        assert rejected(tmp_path / "out") == {"jsonl:refuse_odd": "inconsistent_llm", "jsonl:cake": "unsafe_answer"}
        assert script.kinds.count("checker") == 3 and script.kinds.count("judge") == 2
        stats = json.loads((tmp_path / "out" / "stats.json").read_text())
        assert stats["models"]["judge"] == "llm (openai/judge)"
        before = len(server.log)
        build(source, tmp_path / "out", server.url, *args)
        assert len(server.log) == before


def test_copy_images_makes_a_portable_folder(tmp_path):
    source = make_seeds(tmp_path / "s", [("ok", False)])
    with ScriptedServer(Script()) as server:
        build(source, tmp_path / "out", server.url, "--copy-images", "--llavacot")
    row = json.loads((tmp_path / "out" / "tis.json").read_text())[0]
    assert row["images"][0].startswith("images/") and (tmp_path / "out" / row["images"][0]).is_file()
    info = json.loads((tmp_path / "out" / "dataset_info.json").read_text())
    assert set(info) == {"tis", "tis_llavacot"}
    cli("data", "validate", tmp_path / "out" / "tis.json")
    cli("data", "validate", tmp_path / "out" / "tis_llavacot.json")


def test_local_hf_captioner(tmp_path, tiny_model_dir):
    """Any backend captions: here the tiny local VLM (its words are noise, the plumbing is real)."""
    source = make_seeds(tmp_path / "s", [("ok", False)])
    script = Script()
    with ScriptedServer(script) as server:
        cli("data", "build", "--source", f"jsonl:{source}", "--captioner", f"hf/{tiny_model_dir}",
            "--teacher", "openai/teach", "--teacher-base-url", server.url, "--caption-max-tokens", "8",
            "--out", tmp_path / "out", "--quiet")
    assert script.kinds == ["teacher"]
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["stages"]["caption"]["requests"] == 1
    assert stats["counts"]["kept"] + stats["rejected_by_reason"].get("caption_error", 0) == 1


def test_bad_source_and_policy_exit_cleanly(tmp_path):
    out = tmp_path / "out"
    cli("data", "build", "--source", "csv:x", "--captioner", "openai/c", "--teacher", "openai/t", "--out", out,
        "--quiet", expect=2)
    cli("data", "build", "--source", f"jsonl:{tmp_path}/none.jsonl", "--captioner", "openai/c", "--teacher",
        "openai/t", "--policy", tmp_path / "nope.yaml", "--out", out, "--quiet", expect=2)
