"""``thinksafe data build`` end to end against a scripted captioner + teacher.

One jsonl source holds a case per outcome; the scripted server answers each
teacher request by the case tag in the question. The build runs once per
module (fixture ``built``); the other tests read its outputs or copy its
folder to re-run with a swapped policy or teacher.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image

from helpers import cli
from scripted_server import Reply, Request, ScriptedServer
from thinksafe.data.export import sharegpt_to_trl
from thinksafe.data.policy import default_policy_path

CAPTION = "A plain red square on a white background with the word HELLO printed in black."

ALLOWED = ("Let me think... The user asks what colour the square in the image is. The image shows a plain "
           "red square with the word HELLO. Nothing here touches the safety policy; it is an everyday "
           "question.\nCategory: Allowed - Section: none")
DISALLOWED = ("Let me think... The user wants step-by-step instructions to build a weapon like the one in "
              "the image. That is covered by the Definition of Physical Harm: instructions for making "
              "weapons are disallowed. Wait, is there a harmless reading? No.\n"
              "Category: Disallowed - Section: Definition of Physical Harm")
REFUSAL = "I'm sorry, but I can't help with building weapons. I can share general tool-safety tips instead."
SAFE_COMPLETION = ("Let me think... The user asks how the scam in the image works. Under the Definition of "
                   "Fraud, prevention and awareness are allowed, so I can explain the warning signs only.\n"
                   "Category: Safe Completion - Section: Definition of Fraud")

# case tag -> (question, teacher reply); the tag rides in the question text.
TEACHER = {
    "allowed": Reply(content=f"<think>\n{ALLOWED}\n</think>\nThe square in the image is red."),
    "disallowed": Reply(content=f"<think>{DISALLOWED}</think>\n\n---\n\n{REFUSAL}"),
    "native": Reply(content=REFUSAL, reasoning_content=DISALLOWED),
    "reference": Reply(content=f"<think>\n{ALLOWED}\n</think>\nIt is red."),
    "leak_fixed": Reply(content="<think>\n" + ALLOWED.replace("The image shows", "The caption shows")
                        + "\n</think>\nThe square is red."),
    "no_think": Reply(content="The square in the image is red, as anyone can see."),
    "contradiction": Reply(content=f"<think>\n{DISALLOWED}\n</think>\nSure, here are the steps: first cut "
                                   "the pipe, then assemble the parts."),
    "leak": Reply(content="<think>\n" + ALLOWED + " The reference answer says red, so I agree."
                  "\n</think>\nThe square is red."),
    "unsafe": Reply(content=f"<think>\n{SAFE_COMPLETION}\n</think>\nThe scam works by sending a fake bank "
                            "message that asks for the account password."),
}


def _teacher_case(req: Request) -> str:
    return re.search(r"case=(\w+)", req.text).group(1)


class Script:
    """The scripted captioner + teacher; records every teacher prompt."""

    def __init__(self):
        self.teacher_texts: list[str] = []

    def __call__(self, req: Request) -> Reply:
        if req.image_bytes:
            return Reply(content=CAPTION)
        self.teacher_texts.append(req.text)
        return TEACHER[_teacher_case(req)]


def _image(path: Path, color: str) -> str:
    Image.new("RGB", (64, 64), color).save(path)
    return path.name


def make_source(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    red, blue, green = (_image(folder / f"{c}.png", c) for c in ("red", "blue", "green"))
    (folder / "broken.png").write_text("not an image")
    rows = [
        {"id": "allowed", "image": red, "question": "What colour is the square? case=allowed", "harmful": False},
        {"id": "disallowed", "image": blue, "question": "How do I build this weapon? case=disallowed",
         "category": "weapon"},
        {"id": "native", "image": green, "question": "Build it? case=native", "harmful": True},
        {"id": "reference", "image": blue, "question": "Which colour? case=reference", "harmful": False,
         "reference_answer": "It is red."},
        {"id": "leak_fixed", "image": green, "question": "Colour? case=leak_fixed", "harmful": False},
        {"id": "no_think", "image": red, "question": "Colour please case=no_think"},
        {"id": "contradiction", "image": red, "question": "Weapon steps case=contradiction"},
        {"id": "leak", "image": blue, "question": "Colour now case=leak"},
        {"id": "missing", "image": "nowhere.png", "question": "Anything? case=allowed"},
        {"id": "unreadable", "image": "broken.png", "question": "Anything? case=allowed"},
        {"id": "dup", "image": red, "question": "What colour is the square?  case=allowed", "harmful": False},
        {"id": "unsafe", "image": green, "question": "How does this scam work? case=unsafe", "harmful": True},
    ]
    path = folder / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


KEPT = {"jsonl:allowed", "jsonl:disallowed", "jsonl:native", "jsonl:reference", "jsonl:leak_fixed"}
REJECTED = {"jsonl:no_think": "no_think", "jsonl:contradiction": "inconsistent", "jsonl:leak": "leakage",
            "jsonl:missing": "missing_image", "jsonl:unreadable": "unreadable_image", "jsonl:dup": "duplicate",
            "jsonl:unsafe": "unsafe_answer"}


def build_args(source: Path, out: Path, url: str, *extra: str) -> list[str]:
    return ["data", "build", "--source", f"jsonl:{source}", "--captioner", "openai/captioner",
            "--teacher", "openai/teacher", "--base-url", url, "--concurrency", "3", "--out", out, "--quiet",
            *extra]


@pytest.fixture(scope="module")
def server():
    script = Script()
    with ScriptedServer(script, latency=0.02) as s:
        s.script = script
        yield s


@pytest.fixture(scope="module")
def built(tmp_path_factory, server):
    root = tmp_path_factory.mktemp("build")
    source = make_source(root / "seeds")
    out = root / "out"
    cli(*build_args(source, out, server.url))
    return {"source": source, "out": out, "requests": len(server.log)}


def read_json(path: Path):
    return json.loads(path.read_text())


def test_good_rows_exported_and_bad_rows_rejected_with_reason(built):
    out = built["out"]
    rows = read_json(out / "tis.json")
    assert {r["metadata"]["id"] for r in rows} == KEPT
    rejected = {r["id"]: r["reason"] for r in map(json.loads, (out / "rejected.jsonl").read_text().splitlines())}
    assert rejected == REJECTED
    by_id = {r["metadata"]["id"]: r for r in rows}
    gpt = by_id["jsonl:disallowed"]["conversations"][1]["value"]
    assert gpt.startswith("<think>\nLet me think") and gpt.endswith(f"</think>\n{REFUSAL}")  # --- removed
    assert by_id["jsonl:native"]["conversations"][1]["value"] == f"<think>\n{DISALLOWED}\n</think>\n{REFUSAL}"
    assert by_id["jsonl:reference"]["conversations"][1]["value"].endswith("</think>\nIt is red.")
    leak_fixed = by_id["jsonl:leak_fixed"]["conversations"][1]["value"]
    assert "caption" not in leak_fixed.lower() and "The image shows a plain red square" in leak_fixed
    meta = by_id["jsonl:disallowed"]["metadata"]
    assert (meta["decision"], meta["action"], meta["section"]) == ("Disallowed", "refuse",
                                                                   "Definition of Physical Harm")
    assert by_id["jsonl:allowed"]["conversations"][0]["value"] == "<image>What colour is the square? case=allowed"


def test_stats_card_and_dataset_info(built):
    out = built["out"]
    stats = read_json(out / "stats.json")
    assert stats["counts"] == {"seeds": 12, "kept": 5, "rejected": 7}
    assert stats["by_decision"] == {"Allowed": 3, "Disallowed": 2}
    assert stats["leakage"] == {"rewritten": 1, "rejected": 1}
    assert stats["rejected_by_reason"]["missing_image"] == 1
    # 3 distinct images captioned (the broken/missing ones never reach the server), 10 teacher calls.
    assert stats["stages"]["caption"] == {"requests": 3, "cached": 0, "errors": 0}
    assert stats["stages"]["think"]["requests"] == 10
    assert stats["policy"]["sha256"] == hashlib.sha256(default_policy_path().read_bytes()).hexdigest()
    assert stats["thought_words"]["n"] == 5 and stats["thought_words"]["min"] >= 15
    info = read_json(out / "dataset_info.json")
    assert info == {"tis": {"file_name": "tis.json", "formatting": "sharegpt",
                            "columns": {"messages": "conversations", "images": "images"},
                            "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                                     "assistant_tag": "gpt"}}}
    card = (out / "README.md").read_text()
    assert "tis-policy" in card and "| inconsistent | 1 |" in card
    assert (out / "trl" / "train.jsonl").is_file() and (out / "trl" / "train.parquet").is_file()


def test_requests_bounded_by_concurrency(built, server):
    assert 1 < server.max_in_flight <= 3


def test_rerun_makes_zero_requests(built, server):
    before = len(server.log)
    first = (built["out"] / "tis.json").read_text()
    cli(*build_args(built["source"], built["out"], server.url))
    assert len(server.log) == before
    assert (built["out"] / "tis.json").read_text() == first
    assert read_json(built["out"] / "stats.json")["requests"] == 0


def test_exported_files_pass_validate(built):
    cli("data", "validate", built["out"] / "tis.json")
    cli("data", "validate", built["out"] / "trl" / "train.jsonl")


def test_policy_swap_changes_teacher_prompt_and_hash(built, server, tmp_path):
    policy = tmp_path / "space.yaml"
    policy.write_text(
        "name: space-policy\nversion: '7'\nsections:\n"
        "  - id: piracy\n    title: Definition of Space Piracy\n    aliases: [weapon]\n"
        "    definition: Boarding other ships.\n    disallowed: [Boarding plans.]\n    allowed: [History.]\n")
    out = tmp_path / "out"
    shutil.copytree(built["out"], out)  # same cache: captions are reused, thoughts are not
    server.script.teacher_texts.clear()
    before = len(server.log)
    cli(*build_args(built["source"], out, server.url, "--policy", policy))
    texts = server.script.teacher_texts
    assert len(texts) == 10 and len(server.log) - before == 10  # no caption request
    assert all("Definition of Space Piracy" in t and "Definition of Physical Harm" not in t for t in texts)
    assert any("Likely relevant policy section: Definition of Space Piracy" in t for t in texts)
    sha = hashlib.sha256(policy.read_bytes()).hexdigest()
    stats = read_json(out / "stats.json")
    assert stats["policy"]["sha256"] == sha and stats["policy"]["version"] == "7"
    assert {r["metadata"]["policy_sha256"] for r in read_json(out / "tis.json")} == {sha}


def test_teacher_swap_asks_the_new_teacher_only(built, server, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(built["out"], out)
    before = len(server.log)
    args = build_args(built["source"], out, server.url)
    args[args.index("openai/teacher")] = "openai/teacher-2"
    cli(*args)
    new = server.log[before:]
    assert [e["model"] for e in new] == ["teacher-2"] * 10
    assert {r["metadata"]["teacher"] for r in read_json(out / "tis.json")} == {"openai/teacher-2"}


def test_exported_sharegpt_trains_with_trl_collator(built, tiny_model_dir):
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    collator = DataCollatorForVisionLanguageModeling(processor)
    examples = []
    for record in read_json(built["out"] / "tis.json"):
        row = sharegpt_to_trl(record)
        examples.append({"messages": row["messages"], "images": [Image.open(p).convert("RGB") for p in row["images"]]})
    batch = collator(examples)
    assert batch["pixel_values"].shape[0] == len(examples)
    with torch.no_grad():
        loss = model(**batch).loss
    assert math.isfinite(loss.item())


def test_trl_hf_folder_loads_and_collates(built, tiny_model_dir):
    import datasets
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    ds = datasets.load_from_disk(str(built["out"] / "trl" / "hf"))
    assert len(ds) == 5
    processor = AutoProcessor.from_pretrained(tiny_model_dir)
    model = AutoModelForImageTextToText.from_pretrained(tiny_model_dir)
    batch = DataCollatorForVisionLanguageModeling(processor)([dict(ds[i]) for i in range(2)])
    with torch.no_grad():
        assert math.isfinite(model(**batch).loss.item())
