"""ScienceQA-IMG, MMStar and MathVista on format-faithful fixtures: loaders for each released
layout, the prompts, and exact metrics through real CLI runs against the scripted server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from thinksafe.benchmarks import get_benchmark
from thinksafe.benchmarks.mathvista import DEMO_PROMPT, normalize, rule_extract

from capability_data import (MATHVISTA, SCIENCEQA, mathvista_columns, mmstar_columns, scienceqa_columns,
                             write_mathvista_authors, write_parquet, write_scienceqa_authors)
from helpers import cli, read_metrics, read_samples
from scripted_server import Reply, ScriptedServer

pytest.importorskip("pyarrow")


def run(tmp_path: Path, bench: str, data: Path, answers: dict[str, Reply], *extra: str, name: str = "run") -> Path:
    """``thinksafe eval`` against a server answering by the prompt's first line that is in ``answers``."""
    def reply(req) -> Reply:
        return next(r for key, r in answers.items() if key in req.text)

    out = tmp_path / name
    with ScriptedServer(reply) as server:
        cli("eval", "--benchmark", bench, "--data", data, "--model", "openai/x", "--base-url", server.url,
            "--out", out, "--quiet", *extra)
    return out


# ---- ScienceQA -----------------------------------------------------------------------------

def test_scienceqa_layouts_give_the_same_questions(tmp_path):
    derek = write_parquet(tmp_path / "derek" / "data" / "test-00000-of-00001-f0e7.parquet", scienceqa_columns())
    img_rows = [r for r in SCIENCEQA if r[6]]
    lmms = write_parquet(tmp_path / "lmms" / "ScienceQA-IMG" / "test-00000-of-00001.parquet",
                         scienceqa_columns(img_rows))
    a = list(get_benchmark("scienceqa")(data=derek.parents[1], workdir=tmp_path / "w1").samples())
    b = list(get_benchmark("scienceqa")(data=lmms.parents[1], workdir=tmp_path / "w2").samples())
    assert [s.id for s in a] == [s.id for s in b] == ["1", "2", "3", "4"]  # the row without an image is left out
    assert [s.prompt for s in a] == [s.prompt for s in b]
    assert a[0].prompt == ("Context: N/A\nQuestion: Which animal's feet are also adapted for swimming?\n"
                           "Options: (A) duck (B) tiger\nAnswer:")
    assert a[2].prompt.startswith("Context: Read the ad.\nQuestion: Which is the main persuasive appeal?\n"
                                  "Options: (A) ethos (B) pathos (C) logos\n")
    assert [s.fields["answer"] for s in a] == ["A", "A", "C", "B"]
    assert [s.fields["grades"] for s in a] == ["1-6", "1-6", "7-12", "7-12"]
    authors = list(get_benchmark("scienceqa")(data=write_scienceqa_authors(tmp_path / "authors")).samples())
    assert [s.id for s in authors] == ["10", "11", "13", "14"]  # 12 has no image, 99 is a train problem
    assert [s.prompt for s in authors] == [s.prompt for s in a]
    assert Path(authors[0].images[0]).parts[-3:] == ("test", "10", "image.png")


def test_scienceqa_metrics_by_subject_and_grade(tmp_path):
    data = write_parquet(tmp_path / "d" / "ScienceQA-IMG" / "test-00000-of-00001.parquet",
                         scienceqa_columns([r for r in SCIENCEQA if r[6]])).parents[1]
    answers = {
        "swimming": Reply("<think>Tigers cannot swim well... (B)? No.</think>A"),  # right; "(B)" only in thinking
        "capital of Texas": Reply("The answer is (B)."),  # wrong
        "persuasive": Reply("logos"),  # right, by the option's text
        "in common": Reply("<think>Soft or hard, let me", finish_reason="length"),  # cut off: missing
    }
    out = run(tmp_path, "scienceqa", data, answers)
    o = read_metrics(out)["official"]
    assert (o["n"], o["correct"], o["wrong"], o["unparsed"], o["missing"]) == (4, 2, 1, 0, 1)
    assert o["accuracy"] == 0.5 and o["accuracy_parsed"] == pytest.approx(2 / 3)
    assert o["by_subject"]["natural science"]["accuracy"] == 0.5  # swimming right, "in common" missing
    assert o["by_subject"]["social science"]["accuracy"] == 0.0
    assert o["by_subject"]["language science"]["accuracy"] == 1.0
    assert o["by_grades"] == {"1-6": {"accuracy": 0.5, "n": 2, "correct": 1, "unparsed": 0, "missing": 0},
                              "7-12": {"accuracy": 0.5, "n": 2, "correct": 1, "unparsed": 0, "missing": 1}}
    samples = read_samples(out)
    assert samples["3"]["judgments"]["answer"]["extra"]["how"] == "option_text"
    assert [samples[i]["outcome"] for i in ("1", "2", "3", "4")] == ["safe", "unsafe", "safe", None]


# ---- MMStar --------------------------------------------------------------------------------

def test_mmstar_prompt_options_metrics_and_subsets(tmp_path):
    data = write_parquet(tmp_path / "mmstar" / "mmstar.parquet", mmstar_columns()).parent
    samples = list(get_benchmark("mmstar")(data=data, workdir=tmp_path / "w").samples())
    assert [s.id for s in samples] == ["0", "1", "2", "3"]
    assert samples[0].prompt.startswith("Question: Which option describe") and samples[0].prompt.endswith("book.\n")
    assert samples[0].fields["options"]["C"] == "The suitcase is beneath the bed."
    answers = {
        "suitcase": Reply("<think>Is it D? The book is below.</think>The suitcase is on the book."),  # A, by text
        "players": Reply("Answer: D"),  # right
        "equation": Reply("I cannot tell from this image."),  # unparsed
        "plants": Reply("A"),  # wrong
    }
    out = run(tmp_path, "mmstar", data, answers)
    o = read_metrics(out)["official"]
    assert (o["accuracy"], o["correct"], o["wrong"], o["unparsed"], o["n"]) == (0.5, 2, 1, 1, 4)
    assert {k: v["accuracy"] for k, v in o["by_category"].items()} == {
        "coarse perception": 1.0, "fine-grained perception": 1.0, "math": 0.0, "science & technology": 0.0}
    assert o["by_l2_category"]["object counting"]["correct"] == 1
    assert read_samples(out)["2"]["judgments"]["answer"]["label"] == "unparsed"
    only = get_benchmark("mmstar")(data=data, subset="math", workdir=tmp_path / "w")
    assert [s.id for s in only.samples()] == ["2"]


def test_offline_without_data_names_the_url_and_data_flag(monkeypatch, tmp_path):
    from thinksafe.benchmarks import download

    from file_server import closed_port_url

    dead = closed_port_url()
    monkeypatch.setattr(download, "BACKOFF_S", 0.0)
    monkeypatch.setenv("HF_ENDPOINT", dead)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("THINKSAFE_CACHE", str(tmp_path / "cache"))
    result = cli("eval", "--benchmark", "mmstar", "--model", "openai/x", "--base-url", "http://127.0.0.1:9/v1",
                 "--out", tmp_path / "r", "--quiet", expect=2)
    output = result.output.replace("\n", "")  # the console wraps long lines
    assert f"cannot download {dead}/datasets/Lin-Chen/MMStar/resolve/" in output
    assert "pass --data DIR" in output and "Traceback" not in output


# ---- MathVista -----------------------------------------------------------------------------

MATHVISTA_ANSWERS = {
    "measuring cup": Reply("<think>1 litre is 1000 g of water</think>The total volume is 1000 g."),  # needs the LLM
    "fraction": Reply("The correct answer is (B) 8/11."),  # rule: the shared reader
    "length of the bar": Reply("1.20"),  # rule: float
    "sides": Reply("**6**"),  # rule: one number; wrong
}


def test_mathvista_layouts_and_rules(tmp_path):
    parquet = write_parquet(tmp_path / "hf" / "data" / "testmini-00000-of-00001-725687bf7a18d64b.parquet",
                            mathvista_columns()).parents[1]
    a = list(get_benchmark("mathvista")(data=parquet, workdir=tmp_path / "w").samples())
    b = list(get_benchmark("mathvista")(data=write_mathvista_authors(tmp_path / "authors")).samples())
    assert [s.id for s in a] == [s.id for s in b] == ["1", "2", "3", "4"]
    assert [s.prompt for s in a] == [s.prompt for s in b] == [r["query"] for r in MATHVISTA]
    assert [s.category for s in a] == [r["task"] for r in MATHVISTA]
    f = {s.id: s.fields for s in a}
    assert rule_extract(f["2"], "8/11") == "8/11" and rule_extract(f["2"], "(B) 8/11") == "B"
    assert rule_extract(f["1"], "1000") == "1000" and rule_extract(f["1"], "\\boxed{1000}.") == "1000"
    assert rule_extract(f["1"], 'The answer is "1000".') == "1000"
    assert rule_extract(f["1"], "The total volume is 1000 g.") is None
    assert normalize("B", f["2"]) == "8/11" and normalize("(B) 8/11", f["2"]) == "8/11"
    assert normalize("something else", f["2"]) is None  # no nearest-choice guess
    assert normalize("1000.0", f["1"]) == "1000" and normalize("1.23", f["3"]) == "1.2"
    assert normalize("about a litre", f["1"]) is None


def test_mathvista_llm_extraction_through_the_judge_model(tmp_path):
    data = write_parquet(tmp_path / "hf" / "data" / "testmini-00000-of-00001.parquet", mathvista_columns()).parents[1]
    prompts = []

    def extractor(req) -> Reply:
        prompts.append(req.text)
        return Reply("<think>The response says 1000 g.</think>1000")

    with ScriptedServer(extractor) as judge:
        out = run(tmp_path, "mathvista", data, MATHVISTA_ANSWERS, "--judge-model", "openai/j", "--judge-base-url",
                  judge.url)
    assert len(prompts) == 1  # the rule read the other three
    assert prompts[0].startswith(DEMO_PROMPT.strip()) and "line  graph" in prompts[0]
    assert prompts[0].endswith(f"\n\n{MATHVISTA[0]['query']}\n\nThe total volume is 1000 g.\n\nExtracted answer: ")
    o = read_metrics(out)["official"]
    assert (o["accuracy"], o["correct"], o["wrong"], o["unparsed"]) == (0.75, 3, 1, 0)
    assert o["by_task"]["figure question answering"]["accuracy"] == 1.0
    assert o["by_task"]["geometry problem solving"]["accuracy"] == 0.0
    j = read_samples(out)["1"]["judgments"]["answer"]
    assert (j["label"], j["extra"]["how"], j["extra"]["prediction"]) == ("correct", "llm", "1000")
    # Without a judge model the rule alone: the free-text answer is unparsed.
    rule = run(tmp_path, "mathvista", data, MATHVISTA_ANSWERS, name="rule")
    o = read_metrics(rule)["official"]
    assert (o["accuracy"], o["correct"], o["wrong"], o["unparsed"]) == (0.5, 2, 1, 1)
    assert read_samples(rule)["1"]["judgments"]["answer"]["extra"]["how"] == "none"


# ---- presets -------------------------------------------------------------------------------

def test_capability_preset_runs_the_four_into_one_folder(bench_dir, tmp_path):
    from PIL import Image

    data = tmp_path / "data"
    (data / "pope" / "val2014").mkdir(parents=True)
    for split in ("random", "popular", "adversarial"):
        (data / "pope" / f"coco_pope_{split}.json").symlink_to(
            bench_dir / "pope" / "output" / "coco" / f"coco_pope_{split}.json")
    Image.new("RGB", (8, 8), "red").save(data / "pope" / "val2014" / "COCO_val2014_000000310196.jpg", "JPEG")
    write_parquet(data / "scienceqa" / "ScienceQA-IMG" / "test-00000-of-00001.parquet",
                  scienceqa_columns([r for r in SCIENCEQA if r[6]]))
    write_parquet(data / "mmstar" / "mmstar.parquet", mmstar_columns())
    write_parquet(data / "mathvista" / "data" / "testmini-00000-of-00001.parquet", mathvista_columns())
    with ScriptedServer(lambda req: Reply("<think>Looking.</think>A")) as server:
        cli("eval", "--benchmark", "capability", "--data", data, "--model", "openai/x", "--base-url", server.url,
            "--limit", "2", "--out", tmp_path / "run", "--quiet")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())["by_family"]
    assert list(summary) == ["capability"]
    assert list(summary["capability"]) == ["pope", "scienceqa", "mmstar", "mathvista"]
    for name, m in summary["capability"].items():
        assert m["n"] == 2, name
    # "A" is no yes/no; the authors' POPE rule reads it as "yes": question 1 ("yes") right, 2 ("no") wrong.
    assert summary["capability"]["pope"]["official"]["accuracy"] == 0.5
    assert summary["capability"]["scienceqa"]["official"]["correct"] == 2  # both answers are A
    assert summary["capability"]["mmstar"]["official"]["accuracy"] == 0.5
    # MathVista: "A" reads as the multiple-choice letter (3/11, wrong); for the integer question it is unparsed.
    assert summary["capability"]["mathvista"]["official"]["unparsed"] == 1


def test_benchmarks_lists_the_capability_family_and_presets():
    from thinksafe.benchmarks import PRESETS, all_benchmarks

    flat = " ".join(cli("benchmarks").output.split())
    for name in ("pope", "scienceqa", "mmstar", "mathvista"):
        assert all_benchmarks()[name].family == "capability" and name in flat
    assert "preset capability: pope, scienceqa, mmstar, mathvista" in flat
    assert PRESETS["tis-paper+"] == PRESETS["tis-paper"] + PRESETS["capability"]
    # each protocol names the upstream commit it was checked against and lists its deviations
    for name, commit in (("pope", "3df3ba1b110e"), ("scienceqa", "2cbf8318e07b"), ("mmstar", "88f243ab4a39"),
                         ("mathvista", "53d525874bdd")):
        shown = " ".join(cli("benchmarks", "show", name).output.split())
        assert commit in shown and "Deviations from the authors' code" in shown, name
