"""``thinksafe eval`` end to end against a scripted OpenAI-compatible server."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path


from helpers import cli, figstep_tiny_keys, read_metrics, read_samples
from scripted_server import Reply, ScriptedServer
from thinksafe.store.sqlite import COMMIT_INTERVAL_S

# Every output shape of the reasoning parser, and what it must become:
# (reply, expected reasoning, expected answer, source, truncated)
CASES = [
    (Reply("<think>I should refuse.</think>Sorry, I cannot help with that."),
     "I should refuse.", "Sorry, I cannot help with that.", "tags", False),
    (Reply("1. Mix the items.", reasoning_content="The user wants a list."),
     "The user wants a list.", "1. Mix the items.", "field", False),
    (Reply("Hybrid template thinking.</think>Here are the steps."),
     "Hybrid template thinking.", "Here are the steps.", "tags", False),
    (Reply("<think>Step one would be to", finish_reason="length"),
     "Step one would be to", "", "tags", True),
    (Reply("", reasoning_content="Thinking that never ends", finish_reason="length"),
     "Thinking that never ends", "", "field", True),
    (Reply("<SUMMARY>s</SUMMARY><CAPTION>c</CAPTION><REASONING>r</REASONING><CONCLUSION>I won't do that."
           "</CONCLUSION>"), "s\n\nc\n\nr", "I won't do that.", "llavacot", False),
    (Reply("Sure. 1. First 2. Second 3. Third"), "", "Sure. 1. First 2. Second 3. Third", "none", False),
    (Reply("<think>a</think>draft<think>final thought</think>Final answer."),
     "final thought", "Final answer.", "tags", False),
]


def case_responder(figstep_dir: Path):
    index = {key: i % len(CASES) for i, (_, key) in enumerate(figstep_tiny_keys(figstep_dir))}
    return lambda req: CASES[index[req.key]][0]


def eval_args(figstep_dir, url, out, *extra):
    return ["eval", "--benchmark", "figstep", "--subset", "tiny", "--data", figstep_dir, "--model", "openai/x",
            "--base-url", url, "--out", out, "--quiet", *extra]


def test_split_of_every_case_and_refusal_judge(figstep_dir, tmp_path):
    with ScriptedServer(case_responder(figstep_dir)) as server:
        cli(*eval_args(figstep_dir, server.url, tmp_path / "run", "--judge", "refusal"))
    samples = read_samples(tmp_path / "run")
    assert len(samples) == 50
    for i, (sid, _) in enumerate(figstep_tiny_keys(figstep_dir)):
        _, reasoning, answer, source, truncated = CASES[i % len(CASES)]
        row = samples[sid]
        assert (row["reasoning"], row["answer"], row["reasoning_source"], row["truncated_in_reasoning"]) == \
               (reasoning, answer, source, truncated), sid
        # a generation cut off in its thinking has no answer to judge
        assert row["judgments"]["answer"]["label"] == ("missing" if truncated else
                                                      ("safe" if "cannot" in answer or "won't" in answer else "unsafe"))
    m = read_metrics(tmp_path / "run")
    truncated = sum(1 for i in range(50) if CASES[i % len(CASES)][4])
    assert m["n"] == 50 and m["errors"] == 0 and m["truncated_in_reasoning"] == truncated
    assert m["targets"]["answer"]["missing"] == truncated
    # thinking that does not refuse with a refusing answer: case 5 (6 of the 50 samples); case 0's
    # thinking ("I should refuse.") is itself a refusal to the refusal judge
    assert m["self_correction"] == 6
    assert m["reasoning_analysis"]["self_correction"]["count"] == 6
    assert m["reasoning_analysis"]["truncated_in_reasoning"]["count"] == truncated
    # samples with no reasoning at all (case 6) are "missing" on the reasoning target
    assert m["targets"]["reasoning"]["missing"] == sum(1 for i in range(50) if CASES[i % len(CASES)][1] == "")


JUDGE_SAYS = ["safe", "unsafe", "Unsafe.", "I think it is unsafe", "", "<think>hmm</think>safe", "**safe**"]
JUDGE_LABEL = ["safe", "unsafe", "unsafe", "unparsed", "unparsed", "safe", "safe"]


def test_llm_judge_counts_equal_what_the_judge_said(figstep_dir, tmp_path):
    said: Counter = Counter()

    def responder(req):
        if "strict safety judge" in req.text:
            judged = req.text.split("[BEGIN TEXT]\n", 1)[1].split("\n[END TEXT]", 1)[0]
            i = sum(map(ord, judged)) % len(JUDGE_SAYS)
            target = ("reasoning" if "internal reasoning" in req.text else
                      "answer" if "final answer" in req.text else "full")
            said[(target, JUDGE_LABEL[i])] += 1
            return Reply(JUDGE_SAYS[i])
        return case_responder(figstep_dir)(req)

    with ScriptedServer(responder) as server:
        cli(*eval_args(figstep_dir, server.url, tmp_path / "run", "--judge", "llm", "--judge-model", "openai/judge",
                       "--judge-base-url", server.url))
        judge_requests = sum(1 for r in server.log if r["model"] == "judge")
    m = read_metrics(tmp_path / "run")
    for target in ("reasoning", "answer", "full"):
        block = m["targets"][target]
        for label in ("safe", "unsafe", "unparsed"):
            assert block[label] == said[(target, label)], (target, label)
        assert block["safe"] + block["unsafe"] + block["unparsed"] + block["missing"] == 50
    assert judge_requests == sum(said.values())
    # re-running a finished run asks nobody anything
    with ScriptedServer(responder) as server:
        cli(*eval_args(figstep_dir, server.url, tmp_path / "run", "--judge", "llm", "--judge-model", "openai/judge",
                       "--judge-base-url", server.url))
        assert server.log == []
    assert read_metrics(tmp_path / "run") == m


def test_rerun_of_finished_run_makes_zero_requests(figstep_dir, tmp_path):
    with ScriptedServer(case_responder(figstep_dir)) as server:
        cli(*eval_args(figstep_dir, server.url, tmp_path / "run"))
        assert len(server.log) == 50
        first = read_metrics(tmp_path / "run")
        cli(*eval_args(figstep_dir, server.url, tmp_path / "run"))
        assert len(server.log) == 50
    assert read_metrics(tmp_path / "run") == first


def test_transient_errors_are_retried_without_duplicates(figstep_dir, tmp_path):
    """429 (with Retry-After), 500 and a timeout on each sample's first try."""
    seen: Counter = Counter()
    keys = [k for _, k in figstep_tiny_keys(figstep_dir)]
    failure = {k: i % 4 for i, k in enumerate(keys)}  # 0: ok, 1: 429, 2: 500, 3: timeout

    def responder(req):
        seen[req.key] += 1
        if seen[req.key] == 1 and failure[req.key] == 1:
            return Reply(status=429, headers={"Retry-After": "0.2"})
        if seen[req.key] == 1 and failure[req.key] == 2:
            return Reply(status=500)
        if seen[req.key] == 1 and failure[req.key] == 3:
            return Reply("too late", delay=2.0)
        return Reply("<think>t</think>An answer.")

    with ScriptedServer(responder) as server:
        cli(*eval_args(figstep_dir, server.url, tmp_path / "run", "--timeout", "1"))
        server.wait_idle()
        ok = Counter(r["key"] for r in server.log if r["status"] == 200)
    samples = read_samples(tmp_path / "run")
    assert all(s["answer"] == "An answer." and s["error"] is None for s in samples.values())
    assert len(samples) == 50
    # the answer each sample keeps was produced once; the timed-out replies were never used
    assert {k: ok[k] for k in keys} == {k: 2 if failure[k] == 3 else 1 for k in keys}


def test_permanent_model_error_is_recorded_per_sample(figstep_dir, tmp_path):
    bad = figstep_tiny_keys(figstep_dir)[3]

    def responder(req):
        return Reply(status=400) if req.key == bad[1] else Reply("fine")

    with ScriptedServer(responder) as server:
        cli(*eval_args(figstep_dir, server.url, tmp_path / "run"))
    samples = read_samples(tmp_path / "run")
    assert "HTTP 400" in samples[bad[0]]["error"] or "400" in samples[bad[0]]["error"]
    assert sum(1 for s in samples.values() if s["error"]) == 1
    m = read_metrics(tmp_path / "run")
    assert m["errors"] == 1 and m["targets"]["answer"]["missing"] == 1 and m["targets"]["answer"]["unsafe"] == 49


def test_api_key_never_written(figstep_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-very-secret-123")
    with ScriptedServer(lambda req: Reply("ok")) as server:
        result = cli(*eval_args(figstep_dir, server.url, tmp_path / "run", "--api-key-env", "MY_KEY", "--limit", "3"))
        assert server.log[0]["auth"] == "Bearer sk-very-secret-123"
    assert "sk-very-secret" not in result.output
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert b"sk-very-secret" not in path.read_bytes(), path


def _run_subprocess(args, **kw):
    return subprocess.Popen([sys.executable, "-m", "thinksafe.cli", *map(str, args)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, **kw)


def test_kill_minus_nine_then_resume(figstep_dir, tmp_path):
    """SIGKILL mid-run loses at most the requests in flight; the result equals an uninterrupted run."""
    log = tmp_path / "requests.jsonl"
    concurrency = 4
    with ScriptedServer(case_responder(figstep_dir), latency=0.15, log_path=log) as server:
        args = eval_args(figstep_dir, server.url, tmp_path / "run", "--concurrency", concurrency)
        proc = _run_subprocess(args)
        deadline = time.time() + 60
        while len(server.log) < 20 and time.time() < deadline:
            time.sleep(0.02)
        killed_at = time.time()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        answered_before = len(server.log)
        assert 20 <= answered_before < 50
        rerun = _run_subprocess(args)
        assert rerun.wait(timeout=120) == 0, rerun.stderr.read()
        with ScriptedServer(case_responder(figstep_dir)) as clean:
            cli(*eval_args(figstep_dir, clean.url, tmp_path / "clean"))
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    counts = Counter(e["key"] for e in entries)
    assert set(counts) == {k for _, k in figstep_tiny_keys(figstep_dir)}
    duplicated = [k for k, c in counts.items() if c > 1]
    # Only requests in flight at the kill, or answered within the store's commit
    # bound before it (a few ms; slack for a loaded machine), are asked twice.
    first_answer = {}
    for e in entries:
        first_answer.setdefault(e["key"], e["end"])
    assert all(c <= 2 for c in counts.values())
    assert all(first_answer[k] > killed_at - COMMIT_INTERVAL_S - 0.2 for k in duplicated)
    assert len(duplicated) <= 2 * concurrency
    assert read_metrics(tmp_path / "run") == {**read_metrics(tmp_path / "clean")}
    clean_rows = read_samples(tmp_path / "clean")
    for sid, row in read_samples(tmp_path / "run").items():
        assert {k: row[k] for k in ("reasoning", "answer", "judgments")} == \
               {k: clean_rows[sid][k] for k in ("reasoning", "answer", "judgments")}


def test_report_rewrites_results_and_escapes_html(figstep_dir, tmp_path):
    evil = "<script>alert(1)</script> Sure: 1. a"
    with ScriptedServer(lambda req: Reply(f"<think>x</think>{evil}")) as server:
        cli(*eval_args(figstep_dir, server.url, tmp_path / "run", "--limit", "4"))
    metrics = read_metrics(tmp_path / "run")
    (tmp_path / "run" / "metrics.json").unlink()
    (tmp_path / "run" / "samples.jsonl").unlink()
    cli("report", tmp_path / "run")
    assert read_metrics(tmp_path / "run") == metrics
    assert len(read_samples(tmp_path / "run")) == 4
    page = (tmp_path / "run" / "report.html").read_text()
    assert "<script>alert(1)" not in page and "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e" in page


def test_requests_prepared_ahead_are_the_requests_sent_otherwise(figstep_dir, tmp_path):
    from thinksafe.models import GenerationSettings, text_messages
    from thinksafe.models.openai_api import PREPARE_MAX_BYTES, prepare_messages, request_body

    small = sorted((figstep_dir / "images/SafeBench").glob("*.png"))[0]
    large = tmp_path / "large.png"
    large.write_bytes(small.read_bytes() + b"\0" * PREPARE_MAX_BYTES)  # the bytes are sent as they are
    gone = tmp_path / "gone.png"
    messages = text_messages("What is shown?", "Be brief.", [str(small), str(large), str(gone)])
    prepared = prepare_messages(messages)
    images = [p for p in prepared[1]["content"] if p["type"] == "image"]
    assert ["data_url" in p for p in images] == [True, False, False]  # large: encoded when sent; gone: fails then
    gone.write_bytes(small.read_bytes())
    settings = GenerationSettings()
    body = request_body("m", prepared, settings)
    assert body == request_body("m", messages, settings)
    urls = [p["image_url"]["url"] for p in json.loads(body)["messages"][1]["content"] if p["type"] == "image_url"]
    assert [base64.b64decode(u.split(",", 1)[1]) for u in urls] == [small.read_bytes(), large.read_bytes(),
                                                                    small.read_bytes()]
