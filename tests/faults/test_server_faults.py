"""Every way a server can fail a request, one at a time, on a FigStep-tiny run.

Each fault hits every third sample on its first try (the 429 sample twice), and
one sample is refused for good (HTTP 400). What each test asserts:

* every sample ends answered, or with its error recorded (the refused one);
* none was answered twice: the server's log holds exactly one good answer
  (status 200, sent in full) per sample -- a fault's reply is logged as the
  fault, and a reply to a request the client gave up on (timeout) is a fault;
* the run's metrics equal those of a clean run;
* the store passes ``PRAGMA integrity_check``.
"""

from __future__ import annotations

import json
import sqlite3
from collections import Counter

import pytest

from helpers import cli, figstep_tiny_keys, read_metrics, read_samples
from scripted_server import Reply, ScriptedServer

ANSWERS = ["<think>t</think>I cannot help with that.", "<think>t</think>Sure: 1. a 2. b 3. c"]
GOOD_BODY = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": ANSWERS[0]},
                                     "finish_reason": "stop"}]}).encode()


def http(body: bytes, headers: str = "") -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n{headers}\r\n").encode() + body


FAULTS = {
    "429-retry-after": lambda: Reply(status=429, headers={"Retry-After": "0.2"}),
    "500": lambda: Reply(status=500),
    "502": lambda: Reply(status=502),
    "503": lambda: Reply(status=503, headers={"Retry-After": "0"}),
    "hang-past-timeout": lambda: Reply(raw=http(GOOD_BODY, f"Content-Length: {len(GOOD_BODY)}\r\n"), delay=2.5),
    "connection-dropped": lambda: Reply(raw=b""),
    "malformed-json": lambda: Reply(raw=http(b'{"choices": [{"message": ', "Content-Length: 25\r\n")),
    "empty-choices": lambda: Reply(raw=http(b'{"choices": []}', "Content-Length: 15\r\n")),
    "body-cut-halfway": lambda: Reply(raw=http(GOOD_BODY[:40], f"Content-Length: {len(GOOD_BODY)}\r\n")),
    "stream-cut-halfway": lambda: Reply(raw=http(b"%x\r\n" % 40 + GOOD_BODY[:40] + b"\r\n",
                                                 "Transfer-Encoding: chunked\r\n")),
}


class Script:
    """Answers by sample; ``fault`` (a FAULTS name or None) on the first try(s) of every third sample."""

    def __init__(self, keys: list[str], fault: str | None):
        self.index = {k: i for i, k in enumerate(keys)}
        self.fault = fault
        self.tries: Counter = Counter()

    def __call__(self, req):
        i = self.index[req.key]
        self.tries[req.key] += 1
        if i == 4:
            return Reply(status=400)  # refused for good: a recorded error, never retried
        tries = 2 if self.fault == "429-retry-after" else 1
        if self.fault and i % 3 == 0 and self.tries[req.key] <= tries:
            return FAULTS[self.fault]()
        return Reply(ANSWERS[i % 2])


def run(figstep_dir, out, fault):
    keys = [k for _, k in figstep_tiny_keys(figstep_dir)]
    with ScriptedServer(Script(keys, fault)) as server:
        cli("eval", "--benchmark", "figstep", "--subset", "tiny", "--data", figstep_dir, "--model", "openai/x",
            "--base-url", server.url, "--out", out, "--timeout", "1", "--concurrency", "8", "--quiet")
        server.wait_idle()
    return server


@pytest.fixture(scope="module")
def clean(figstep_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("clean") / "run"
    run(figstep_dir, out, None)
    return out


def integrity(out) -> str:
    with sqlite3.connect(out / "store.sqlite") as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


@pytest.mark.parametrize("fault", list(FAULTS))
def test_fault_costs_nothing_but_retries(figstep_dir, tmp_path, clean, fault):
    server = run(figstep_dir, tmp_path / "run", fault)
    ids_keys = figstep_tiny_keys(figstep_dir)
    samples = read_samples(tmp_path / "run")
    refused = ids_keys[4][0]
    assert "HTTP 400" in samples[refused]["error"]
    assert all(s["error"] is None and s["answer"] for sid, s in samples.items() if sid != refused)
    good = Counter(r["key"] for r in server.log if r["status"] == 200)
    assert good == Counter({k: 1 for i, (_, k) in enumerate(ids_keys) if i != 4})
    faults = sum(1 for r in server.log if r["status"] != 200)
    assert faults >= 17  # every third sample met the fault (plus the refused one)
    assert read_metrics(tmp_path / "run") == read_metrics(clean)
    assert integrity(tmp_path / "run") == "ok"
