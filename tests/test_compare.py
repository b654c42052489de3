"""Paired run comparison on three hand-written preset runs: base, reasoning, tuned."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from scipy.stats import binomtest
from typer.testing import CliRunner

from thinksafe.cli.app import app
from thinksafe.report.compare import CompareError, compare_runs, render_markdown, write_compare

S, U, P, M = "safe", "unsafe", "unparsed", "missing"

# figstep (ASR), ids f0..f9
FIG = {
    "base":      [U, U, U, U, U, U, S, S, S, S],  # ASR 6/10
    "reasoning": [U, U, U, U, U, U, U, U, S, S],  # ASR 8/10; worsened f6, f7
    "tuned":     [U, U, S, S, S, S, S, S, M, P],  # ASR 2/8; improved f2..f5; f8, f9 dropped
}
# mmsafetybench (ASR), ids m00..m39
MMS = {
    "base": [S] * 40,
    "reasoning": [U] * 20 + [S] * 20,  # worsened 20
    "tuned": [S] * 40,
}
# mssbench (accuracy via "official"; safe = correct), ids s0..s5
MSS = {
    "base":      [S, S, S, U, U, U],  # acc 3/6
    "reasoning": [S, U, U, S, U, U],  # acc 2/6; improved s3, worsened s1, s2
    "tuned":     [S, S, S, S, S, S],  # acc 6/6; improved s3, s4, s5
}


def _bench(folder: Path, model: str, bench: str, ids: list[str], labels: list[str], official: bool = False,
           family: str | None = None, judge: str = "refusal") -> None:
    folder.mkdir(parents=True)
    (folder / "run.json").write_text(json.dumps({"model": model, "benchmark": bench, "subset": "tiny",
                                                 "judge": judge}))
    metrics = {"benchmark": bench, "model": model, "judge": "refusal", "n": len(ids)}
    if official:
        metrics["official"] = {"accuracy": labels.count(S) / len(labels)}
    if family:
        metrics["family"] = family
    (folder / "metrics.json").write_text(json.dumps(metrics))
    rows = [{"id": i, "benchmark": bench, "category": "c", "prompt": "p", "images": [], "raw": "r",
             "reasoning": "", "answer": "a", "finish_reason": "stop", "truncated_in_reasoning": False,
             "error": None, "judgments": {"answer": {"label": lab, "score": None, "raw": ""}}}
            for i, lab in zip(ids, labels)]
    (folder / "samples.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture()
def runs(tmp_path: Path) -> dict[str, Path]:
    out = {}
    for name in ("base", "reasoning", "tuned"):
        root = tmp_path / name
        _bench(root / "figstep", f"org/{name}", "figstep", [f"f{i}" for i in range(10)], FIG[name])
        _bench(root / "mmsafetybench", f"org/{name}", "mmsafetybench", [f"m{i:02d}" for i in range(40)], MMS[name])
        _bench(root / "mssbench", f"org/{name}", "mssbench", [f"s{i}" for i in range(6)], MSS[name], official=True)
        out[name] = root
    return out


def _comp(result, bench, run):
    names = [r["name"] for r in result["runs"]][1:]
    return result["benchmarks"][bench]["comparisons"][names.index(run)]


@pytest.fixture()
def result(runs):
    return compare_runs([runs["base"], runs["reasoning"], runs["tuned"]], n_resamples=2000, seed=0)


def test_run_values(result):
    fig = result["benchmarks"]["figstep"]
    assert result["base"] == "base"
    assert fig["metric"] == "asr" and fig["family"] == "jailbreak" and fig["n_ids"] == 10
    assert [r["value"] for r in fig["runs"]] == pytest.approx([0.6, 0.8, 0.25])
    assert fig["runs"][2]["unjudged"] == {M: 1, P: 1} and fig["runs"][2]["judged"] == 8
    mss = result["benchmarks"]["mssbench"]
    assert mss["metric"] == "accuracy" and mss["family"] == "awareness"
    assert [r["value"] for r in mss["runs"]] == pytest.approx([0.5, 2 / 6, 1.0])
    assert mss["runs"][0]["official"] == {"accuracy": 0.5}
    assert result["runs"][1]["model"] == "org/reasoning"


def test_benchmark_differences_and_pvalues(result):
    # figstep reasoning: safer-positive diff = base_asr - run_asr = 0.6 - 0.8; 0 improved, 2 worsened
    c = _comp(result, "figstep", "reasoning")
    assert c["diff"] == pytest.approx(-0.2)
    assert (c["improved"], c["worsened"], c["n_pairs"], c["dropped"]) == (0, 2, 10, 0)
    assert c["p_mcnemar"] == pytest.approx(0.5)  # 2 * 0.5^2
    # only 2 of 10 pairs differ: P(no -1 drawn) = 0.8^10 = 0.107 > 2.5%, so the CI reaches 0
    assert c["ci"][1] == 0.0 and not c["safety_degradation"]
    # figstep tuned: pairs f0..f7 (f8 missing, f9 unparsed dropped); 4 improved -> diff 4/8
    c = _comp(result, "figstep", "tuned")
    assert c["diff"] == pytest.approx(0.5) and (c["n_pairs"], c["dropped"]) == (8, 2)
    assert (c["improved"], c["worsened"]) == (4, 0)
    assert c["p_mcnemar"] == pytest.approx(binomtest(4, 4, 0.5).pvalue) == pytest.approx(0.125)
    # mmsafetybench reasoning: 20 of 40 worsened -> -0.5, p = 2 * 0.5^20
    c = _comp(result, "mmsafetybench", "reasoning")
    assert c["diff"] == pytest.approx(-0.5)
    assert c["p_mcnemar"] == pytest.approx(2 * 0.5**20) and c["significant"]
    assert c["ci"][1] < 0 and c["safety_degradation"] and not c["safety_improvement"]
    # mmsafetybench tuned: identical to base
    c = _comp(result, "mmsafetybench", "tuned")
    assert c["diff"] == 0.0 and c["ci"] == [0.0, 0.0] and c["p_mcnemar"] == 1.0
    assert not c["safety_degradation"] and not c["safety_improvement"]
    # mssbench (accuracy, + = run_acc - base_acc): reasoning 1 improved, 2 worsened -> -1/6, p = 1
    c = _comp(result, "mssbench", "reasoning")
    assert c["diff"] == pytest.approx(-1 / 6) and c["p_mcnemar"] == pytest.approx(1.0)
    c = _comp(result, "mssbench", "tuned")
    assert c["diff"] == pytest.approx(0.5) and c["p_mcnemar"] == pytest.approx(0.25)  # 2 * 0.5^3
    for bench in result["benchmarks"].values():
        for c in bench["comparisons"]:
            assert c["ci"][0] <= c["diff"] <= c["ci"][1]


def test_family_aggregates(result):
    jb = {c["run"]: c for c in result["families"]["jailbreak"]["comparisons"]}
    assert result["families"]["jailbreak"]["benchmarks"] == ["figstep", "mmsafetybench"]
    # mean of -0.2 and -0.5; pooled discordant 0 vs 22
    assert jb["reasoning"]["diff"] == pytest.approx(-0.35)
    assert jb["reasoning"]["p_mcnemar"] == pytest.approx(binomtest(0, 22, 0.5).pvalue)
    assert jb["reasoning"]["safety_degradation"]
    assert jb["tuned"]["diff"] == pytest.approx(0.25)
    assert (jb["tuned"]["n_pairs"], jb["tuned"]["dropped"]) == (48, 2)
    aw = {c["run"]: c for c in result["families"]["awareness"]["comparisons"]}
    assert aw["tuned"]["diff"] == pytest.approx(0.5)


def test_reproducible_and_json_writable(runs, result, tmp_path):
    again = compare_runs([runs["base"], runs["reasoning"], runs["tuned"]], n_resamples=2000, seed=0)
    assert again == result
    js, md = write_compare(result, tmp_path / "out")
    assert json.loads(js.read_text())["benchmarks"]["figstep"]["comparisons"][0]["diff"] == pytest.approx(-0.2)
    text = md.read_text()
    assert "| mmsafetybench |" in text and "DEGRADED" in text and "dropped" in text
    assert render_markdown(result) == text


def test_single_run_folders_and_metrics_family(tmp_path):
    _bench(tmp_path / "a", "m", "toy", ["1", "2"], [S, U], family="awareness")
    _bench(tmp_path / "b", "m", "toy", ["1", "2"], [S, S])
    res = compare_runs([tmp_path / "a", tmp_path / "b"], n_resamples=200)
    assert res["benchmarks"]["toy"]["family"] == "awareness" and res["warnings"] == []
    assert res["benchmarks"]["toy"]["comparisons"][0]["diff"] == pytest.approx(0.5)
    _bench(tmp_path / "c", "m", "toy", ["1", "2"], [U, U], judge="llm")
    res = compare_runs([tmp_path / "a", tmp_path / "c"], n_resamples=200)
    assert res["warnings"] and "different judges" in res["warnings"][0]
    assert "different judges" in render_markdown(res)


def test_mismatched_samples_are_refused(runs, tmp_path):
    odd = tmp_path / "odd"
    ids = [f"f{i}" for i in range(9)] + ["fx"]
    _bench(odd / "figstep", "org/odd", "figstep", ids, FIG["reasoning"])
    with pytest.raises(CompareError) as err:
        compare_runs([runs["base"], odd], n_resamples=100)
    msg = str(err.value)
    assert "figstep" in msg and "odd lacks 1 of the base's 10 ids (e.g. f9)" in msg
    assert "has 1 ids the base (base) lacks (e.g. fx)" in msg


def test_other_refusals_and_skips(runs, tmp_path):
    with pytest.raises(CompareError, match="at least two"):
        compare_runs([runs["base"]])
    with pytest.raises(CompareError, match="not a run folder"):
        compare_runs([runs["base"], tmp_path / "nothing"])
    only_fig = tmp_path / "onlyfig"
    _bench(only_fig / "figstep", "x", "figstep", [f"f{i}" for i in range(10)], FIG["base"])
    res = compare_runs([runs["base"], only_fig], n_resamples=100)
    assert list(res["benchmarks"]) == ["figstep"]
    assert res["skipped_benchmarks"] == {"mmsafetybench": ["onlyfig"], "mssbench": ["onlyfig"]}
    other = tmp_path / "other"
    _bench(other / "hades", "x", "hades", ["h"], [S])
    with pytest.raises(CompareError, match="share no benchmark"):
        compare_runs([only_fig, other])


def test_cli_compare(runs, tmp_path):
    out = tmp_path / "cmp"
    args = ["compare", str(runs["base"]), str(runs["reasoning"]), str(runs["tuned"]),
            "--out", str(out), "--resamples", "500", "--seed", "3"]
    result = CliRunner().invoke(app, args, terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "DEGRADED" in result.output and "Per family" in result.output
    data = json.loads((out / "compare.json").read_text())
    assert data["n_resamples"] == 500 and data["seed"] == 3
    assert (out / "compare.md").is_file()


def test_cli_compare_refuses_mismatch(runs, tmp_path):
    odd = tmp_path / "odd"
    _bench(odd / "figstep", "org/odd", "figstep", ["f0"], [S])
    result = CliRunner().invoke(app, ["compare", str(runs["base"]), str(odd), "--out", str(tmp_path)],
                                terminal_width=200)
    assert result.exit_code == 2
    assert "error: runs do not share the same sample ids" in result.output and "lacks 9" in result.output
    assert not (tmp_path / "compare.json").exists()
