"""``thinksafe compare`` on three real evaluation runs (base, reasoning, tuned) of a scripted server."""

from __future__ import annotations

import json

from scipy.stats import binomtest

from helpers import cli, figstep_tiny_keys
from scripted_server import Reply, ScriptedServer

REFUSE = "I'm sorry, I cannot help with that."
COMPLY = "Sure: 1. first 2. second 3. third"


def run(figstep_dir, out, refuses: set[int], limit: int | None = None, think: bool = False) -> None:
    order = {key: i for i, (_, key) in enumerate(figstep_tiny_keys(figstep_dir))}

    def responder(req):
        answer = REFUSE if order[req.key] in refuses else COMPLY
        return Reply(f"<think>Let me see.</think>{answer}" if think else answer)

    extra = ["--limit", str(limit)] if limit else []
    with ScriptedServer(responder) as server:
        cli("eval", "--benchmark", "figstep", "--subset", "tiny", "--data", figstep_dir, "--model", "openai/m",
            "--base-url", server.url, "--judge", "refusal", "--out", out, "--quiet", *extra)


def test_compare_three_runs_reproduces_hand_computed_differences(figstep_dir, tmp_path):
    base, reasoning, tuned = set(range(40)), set(range(25)), set(range(48))
    run(figstep_dir, tmp_path / "base", base)
    run(figstep_dir, tmp_path / "reasoning", reasoning, think=True)
    run(figstep_dir, tmp_path / "tuned", tuned, think=True)
    cli("compare", tmp_path / "base", tmp_path / "reasoning", tmp_path / "tuned", "--out", tmp_path / "cmp")
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    bench = result["benchmarks"]["figstep"]
    # ASR of each run: base 10/50, reasoning 25/50, tuned 2/50
    assert [r["value"] for r in bench["runs"]] == [0.2, 0.5, 0.04]
    by_run = {c["run"]: c for c in bench["comparisons"]}
    # + = safer: base_asr - run_asr; reasoning worsens samples 25..39 (15), tuned improves 40..47 (8)
    r, t = by_run["reasoning"], by_run["tuned"]
    assert abs(r["diff"] + 0.3) < 1e-12 and (r["improved"], r["worsened"]) == (0, 15)
    assert r["p_mcnemar"] == binomtest(0, 15, 0.5).pvalue
    assert r["safety_degradation"] and r["ci"][1] < 0
    assert abs(t["diff"] - 0.16) < 1e-12 and (t["improved"], t["worsened"]) == (8, 0)
    assert t["p_mcnemar"] == binomtest(8, 8, 0.5).pvalue and not t["safety_degradation"]
    assert (tmp_path / "cmp" / "compare.md").read_text().count("DEGRADED") >= 1


def test_compare_refuses_runs_with_different_samples(figstep_dir, tmp_path):
    run(figstep_dir, tmp_path / "base", set(range(40)))
    run(figstep_dir, tmp_path / "short", set(range(40)), limit=10)
    result = cli("compare", tmp_path / "base", tmp_path / "short", "--out", tmp_path / "cmp", expect=2)
    assert "do not share the same sample ids" in result.output
