"""``thinksafe judge``: re-judging stored generations never calls the model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import figstep_tiny_keys
from scripted_server import Reply, Request, ScriptedServer
from typer.testing import CliRunner

from thinksafe.cli.app import app

LIMIT = 3


def respond(req: Request) -> Reply:
    """The model ``m`` thinks then complies; the judge ``j`` flags the word Step."""
    if req.body["model"] == "m":
        return Reply(content="<think>The image lists a task. I will fill it in.</think>Step 1: gather the tools.")
    if "Agent:" in req.text or req.messages[-1]["role"] == "assistant":
        return Reply(content="unsafe\nS2")
    return Reply(content="unsafe" if "Step 1" in req.text else "safe")


@pytest.fixture()
def server():
    with ScriptedServer(respond) as s:
        yield s


def invoke(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)


def evaluate(server: ScriptedServer, figstep_dir: Path, out: Path) -> None:
    invoke("eval", "--benchmark", "figstep", "--subset", "tiny", "--data", str(figstep_dir), "--model", "openai/m",
           "--base-url", server.url, "--out", str(out), "--limit", str(LIMIT), "--quiet")
    server.wait_idle()


def rejudge(server: ScriptedServer, folder: Path, judge: str, model: str = "openai/j") -> list[dict]:
    """Run ``thinksafe judge`` and return the requests it made."""
    before = len(server.log)
    invoke("judge", str(folder), "--judge", judge, "--judge-model", model, "--judge-base-url", server.url, "--quiet")
    server.wait_idle()  # the server logs a request just after answering it
    return server.log[before:]


def judge_metrics(folder: Path) -> dict[str, dict]:
    """``{judge name: metrics}`` of every ``judges/*/metrics.json``."""
    out = {}
    for path in sorted((folder / "judges").glob("*/metrics.json")):
        metrics = json.loads(path.read_text())
        out[metrics["judge"]] = metrics
    return out


def test_rejudge_calls_only_the_judge_and_keeps_every_judge(server, figstep_dir, tmp_path):
    run = tmp_path / "run"
    evaluate(server, figstep_dir, run)
    assert {r["model"] for r in server.log} == {"m"} and len(server.log) == LIMIT

    calls = rejudge(server, run, "llm")
    assert calls and {r["model"] for r in calls} == {"j"}
    assert len(calls) == LIMIT * 3  # reasoning, answer and full of each sample

    metrics = judge_metrics(run)
    assert set(metrics) == {"refusal", "llm:safe-unsafe"}
    assert metrics["llm:safe-unsafe"]["targets"]["answer"]["unsafe"] == LIMIT
    assert metrics["llm:safe-unsafe"]["targets"]["reasoning"]["safe"] == LIMIT
    assert metrics["refusal"]["targets"]["answer"]["unsafe"] == LIMIT
    top = json.loads((run / "metrics.json").read_text())
    assert top["judge"] == "llm:safe-unsafe"
    rows = [json.loads(line) for line in (run / "judges").glob("llm-safe-unsafe-*/samples.jsonl").__next__().open()]
    assert len(rows) == LIMIT and rows[0]["judgments"]["answer"]["label"] == "unsafe"

    assert rejudge(server, run, "llm") == []  # cached per judge fingerprint
    assert len(judge_metrics(run)) == 2


def test_rejudge_other_judges_and_a_preset_folder(server, figstep_dir, tmp_path):
    root = tmp_path / "preset"
    for name in ("figstep", "again"):
        evaluate(server, figstep_dir, root / name)
    server.log.clear()

    calls = rejudge(server, root, "ensemble:refusal,llm:trace,guard@openai/guard")
    assert calls and {r["model"] for r in calls} <= {"j", "guard"}
    assert len([r for r in calls if r["model"] == "guard"]) == 2 * LIMIT * 3
    for name in ("figstep", "again"):
        metrics = judge_metrics(root / name)
        ensemble = metrics["ensemble:refusal,llm:trace,guard@openai/guard"]
        assert ensemble["targets"]["answer"]["unsafe"] == LIMIT
        # refusal and guard say unsafe, the trace rubric says safe: 2 to 1.
        assert ensemble["targets"]["reasoning"]["unsafe"] == LIMIT
        rows = [json.loads(line) for line in (root / name / "samples.jsonl").open()]
        votes = rows[0]["judgments"]["reasoning"]["extra"]["votes"]
        assert votes == {"safe": 1, "unsafe": 2}


def test_rejudge_refuses_a_folder_that_is_not_a_run(tmp_path):
    result = CliRunner().invoke(app, ["judge", str(tmp_path), "--judge", "refusal", "--quiet"])
    assert result.exit_code == 2 and "no run.json" in result.output


def test_a_regenerated_sample_is_judged_again_by_every_judge(figstep_dir, tmp_path):
    """A sample whose generation failed gets ``missing`` verdicts from the judge of that
    run; once a later run (another judge) generates it, those verdicts must not come back."""
    failing = {"on": True}
    bad_id, bad_key = figstep_tiny_keys(figstep_dir)[1]

    def responder(req: Request) -> Reply:
        if req.body["model"] == "m" and failing["on"] and req.key == bad_key:
            return Reply(status=400)
        return respond(req)

    run = tmp_path / "run"
    with ScriptedServer(responder) as server:
        invoke("eval", "--benchmark", "figstep", "--subset", "tiny", "--data", str(figstep_dir), "--model", "openai/m",
               "--base-url", server.url, "--out", str(run), "--limit", str(LIMIT), "--quiet",
               "--judge", "llm", "--judge-model", "openai/j", "--judge-base-url", server.url)
        server.wait_idle()
        rows = {r["id"]: r for r in map(json.loads, (run / "samples.jsonl").open())}
        assert rows[bad_id]["error"] and rows[bad_id]["judgments"]["answer"]["label"] == "missing"

        failing["on"] = False
        evaluate(server, figstep_dir, run)  # the default judge (refusal); only the failed sample is generated
        assert [r["model"] for r in server.log].count("m") == LIMIT + 1

        calls = rejudge(server, run, "llm")
    assert len(calls) == 3 and {r["model"] for r in calls} == {"j"}  # its three targets, nothing else
    llm = judge_metrics(run)["llm:safe-unsafe"]
    assert llm["targets"]["answer"]["unsafe"] == LIMIT and llm["targets"]["answer"]["missing"] == 0
