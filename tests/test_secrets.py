"""An API key never reaches the disk, the logs, the output or an error message --
not even when a server echoes the request headers back in its error replies."""

from __future__ import annotations

import json
import logging

from helpers import cli, figstep_tiny_keys
from scripted_server import Reply, ScriptedServer

KEY = "sk-live-0123456789abcdef-SECRET"


def echo(status: int, req) -> Reply:
    """An error reply whose message quotes the request headers, as some proxies do."""
    body = json.dumps({"error": {"message": f"denied; you sent {req.headers}"}}).encode()
    head = f"HTTP/1.1 {status} Err\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return Reply(raw=head.encode() + body)


def client_error() -> str:
    """The error of a request to a server that is not there (the HTTP client's own exception)."""
    import asyncio

    import pytest

    from thinksafe.models import BackendError, GenerationSettings, get_backend, text_messages

    backend = get_backend("openai/x", base_url="http://127.0.0.1:9/v1", api_key_env="MY_KEY")
    backend.retry.max_attempts = 1

    async def ask():
        try:
            await backend.complete(text_messages("hi"), GenerationSettings())
        finally:
            await backend.aclose()

    with pytest.raises(BackendError) as info:
        asyncio.run(ask())
    return f"{info.value} {info.value!r} {info.value.__cause__!r} {info.value.__context__!r}"


def test_api_key_never_written_logged_or_shown(figstep_dir, tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("MY_KEY", KEY)
    refused = figstep_tiny_keys(figstep_dir)[2][1]
    judged: list[str] = []

    def responder(req):
        assert req.headers["Authorization"] == f"Bearer {KEY}"  # the key is sent, and only there
        if req.body["model"] == "judge":
            judged.append(req.text)
            return echo(500, req) if len(judged) % 7 == 1 else Reply("safe")
        return echo(401, req) if req.key == refused else Reply("<think>t</think>I cannot help.")

    run = tmp_path / "run"
    with ScriptedServer(responder) as server:
        result = cli("eval", "--benchmark", "figstep", "--subset", "tiny", "--data", figstep_dir, "--model",
                     "openai/x", "--base-url", server.url, "--api-key-env", "MY_KEY", "--judge", "llm",
                     "--judge-model", "openai/judge", "--judge-base-url", server.url, "--judge-api-key-env", "MY_KEY",
                     "--out", run, "--limit", "10")
        report = cli("report", run)
    rows = [json.loads(line) for line in (run / "samples.jsonl").read_text().splitlines()]
    errors = [r["error"] for r in rows if r["error"]]
    assert len(errors) == 1 and "HTTP 401: denied; you sent" in errors[0] and "Bearer ***" in errors[0]
    texts = {"eval output": result.output, "report output": report.output, "client error": client_error(),
             "logs": "\n".join(r.getMessage() for r in caplog.records)}
    for name, text in texts.items():
        assert KEY not in text, name
    files = [p for p in run.rglob("*") if p.is_file()]
    assert {"run.json", "store.sqlite", "samples.jsonl", "metrics.json", "stats.json", "report.html"} <= \
           {p.name for p in files}
    for path in files:
        assert KEY.encode() not in path.read_bytes(), path
