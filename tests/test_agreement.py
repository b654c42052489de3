"""Judge agreement with human labels, on a small hand-computed case."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from thinksafe.cli.app import app
from thinksafe.metrics.agreement import (
    agreement_report,
    judge_agreement,
    load_human_labels,
    load_judges,
    load_run_judgments,
)

# Human labels on the answer: a0..a3 unsafe, a4..a9 safe.
HUMAN = {f"a{i}": ("unsafe" if i < 4 else "safe") for i in range(10)}
# Judge "refusal": a3 missed (FN), a4 flagged (FP), a9 unparsed.
REFUSAL = {"a0": "unsafe", "a1": "unsafe", "a2": "unsafe", "a3": "safe", "a4": "unsafe",
           "a5": "safe", "a6": "safe", "a7": "safe", "a8": "safe", "a9": "unparsed"}


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def _run(folder: Path, judge: str, answers: dict[str, str]) -> None:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"model": "m", "benchmark": "figstep", "judge": judge}))
    rows = [{"id": sid, "benchmark": "figstep", "reasoning": "", "answer": "x",
             "judgments": {"answer": {"label": lab, "score": None, "raw": ""}}} for sid, lab in answers.items()]
    _write_jsonl(folder / "samples.jsonl", rows)


@pytest.fixture()
def labelled(tmp_path: Path) -> tuple[Path, Path]:
    runs = tmp_path / "runs"
    _run(runs / "refusal", "refusal", REFUSAL)
    _run(runs / "llm", "llm", dict(HUMAN))
    labels = tmp_path / "LABELS.jsonl"
    rows = [{"id": sid, "target": "answer", "label": lab} for sid, lab in HUMAN.items()]
    rows.append({"id": "a0", "target": "reasoning", "label": "unsafe"})  # no judge has a reasoning verdict
    rows.append({"id": "a1", "target": "reasoning", "label": "unsure"})  # skipped
    _write_jsonl(labels, rows)
    return runs, labels


def test_loaders(labelled):
    runs, labels = labelled
    human, skipped = load_human_labels(labels)
    assert len(human) == 11 and skipped == 1
    assert load_run_judgments(runs / "refusal")[("a9", "answer")] == "unparsed"
    assert sorted(load_judges(runs)) == ["llm", "refusal"]


def test_hand_computed_agreement(labelled):
    runs, labels = labelled
    report = agreement_report(runs, labels)
    assert report["n_human"] == 11 and report["human_skipped"] == 1
    ref = report["judges"]["refusal"]
    # Compared: 9 answer items (a9 unparsed, a0/reasoning absent).
    # TP = a0,a1,a2 = 3; FN = a3 = 1; FP = a4 = 1; TN = a5..a8 = 4.
    assert ref["n_compared"] == 9
    assert (ref["tp"], ref["fn"], ref["fp"], ref["tn"]) == (3, 1, 1, 4)
    assert ref["not_compared"] == {"absent": 1, "unparsed": 1}
    # rows human (safe, unsafe), columns judge (safe, unsafe)
    assert ref["confusion"]["matrix"] == [[4, 1], [1, 3]]
    assert ref["accuracy"] == pytest.approx(7 / 9)
    assert ref["sensitivity"] == pytest.approx(3 / 4)
    assert ref["specificity"] == pytest.approx(4 / 5)
    # po = 7/9; marginals human (5 safe, 4 unsafe), judge (5 safe, 4 unsafe):
    # pe = (5*5 + 4*4) / 81 = 41/81; kappa = (63 - 41) / (81 - 41) = 22/40 = 0.55
    assert ref["kappa"] == pytest.approx(0.55)
    assert list(ref["by_target"]) == ["answer"]
    # corrected ASR: observed 4/9 unsafe; (4/9 + 0.8 - 1) / (0.75 + 0.8 - 1) = (11/45) / (11/20) = 4/9
    cor = ref["corrected_asr"]
    assert cor["observed"] == pytest.approx(4 / 9) and cor["n"] == 9
    assert cor["prevalence"] == pytest.approx(4 / 9)
    assert cor["ci"][0] <= cor["prevalence"] <= cor["ci"][1]
    llm = report["judges"]["llm"]
    assert llm["accuracy"] == 1.0 and llm["kappa"] == pytest.approx(1.0)
    assert (llm["sensitivity"], llm["specificity"]) == (1.0, 1.0)
    assert llm["n_compared"] == 10


def test_function_over_plain_dicts():
    human = {("x", "answer"): "unsafe", ("y", "answer"): "safe"}
    res = judge_agreement({"j": {("x", "answer"): "unsafe", ("y", "answer"): "missing"}}, human)
    j = res["judges"]["j"]
    assert j["n_compared"] == 1 and j["not_compared"] == {"missing": 1}
    assert j["sensitivity"] == 1.0 and j["specificity"] is None
    assert j["kappa"] is None  # one class only
    assert j["corrected_asr"] is None


def test_conflicting_human_labels(tmp_path: Path):
    path = tmp_path / "L.jsonl"
    _write_jsonl(path, [{"id": "a", "target": "answer", "label": "safe"},
                        {"id": "a", "target": "answer", "label": "unsafe"}])
    with pytest.raises(ValueError, match="labelled both"):
        load_human_labels(path)


def test_cli_writes_agreement_json(labelled):
    runs, labels = labelled
    result = CliRunner().invoke(app, ["judge-agreement", str(runs), "--labels", str(labels)])
    assert result.exit_code == 0, result.output
    assert "refusal" in result.output
    data = json.loads((runs / "agreement.json").read_text())
    assert data["judges"]["refusal"]["kappa"] == pytest.approx(0.55)
    bad = CliRunner().invoke(app, ["judge-agreement", str(runs / "nowhere"), "--labels", str(labels)])
    assert bad.exit_code == 2
