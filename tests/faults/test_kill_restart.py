"""SIGKILL the client at random points and restart it, until the run completes.

Asserted, precisely:

* every sample ends answered (or with a recorded error: none here);
* no sample whose generation was committed before a kill is asked again after
  it (read from the store after each kill); a sample whose request was in
  flight at a kill may be asked again -- at most once more per kill;
* the final metrics and per-sample results equal those of a clean run;
* the store passes ``PRAGMA integrity_check`` after every kill and at the end.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing

from helpers import cli, figstep_tiny_keys, read_metrics, read_samples
from scripted_server import Reply, ScriptedServer

ANSWERS = ["<think>t</think>I cannot help with that.", "<think>Fine.</think>Sure: 1. a 2. b 3. c"]
CONCURRENCY = 4


def committed(out) -> set[str]:
    """Sample ids with a stored, error-free generation (none before the store exists)."""
    if not (out / "store.sqlite").exists():
        return set()
    with closing(sqlite3.connect(out / "store.sqlite")) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {sid for sid, data in db.execute("SELECT sample_id, data FROM generations")
                if '"error": null' in data}


def test_sigkill_at_random_points_then_resume(figstep_dir, tmp_path):
    rng = random.Random(int(os.environ.get("THINKSAFE_KILL_SEED", "12")))
    ids_keys = figstep_tiny_keys(figstep_dir)
    key_of = dict(ids_keys)
    answer = {k: ANSWERS[i % 2] for i, (_, k) in enumerate(ids_keys)}
    base = ["eval", "--benchmark", "figstep", "--subset", "tiny", "--data", figstep_dir, "--model", "openai/x",
            "--concurrency", CONCURRENCY, "--quiet"]
    out = tmp_path / "run"
    # One kill during start-up, five after a random number of new answers.
    plan = [("startup", rng.uniform(0.05, 0.4))] + [("answers", rng.randint(2, 7)) for _ in range(5)]
    marks: list[tuple[int, set[str]]] = []  # (server log length at a restart, samples committed by then)
    with ScriptedServer(lambda r: Reply(answer[r.key]), latency=0.1) as server:
        cmd = [sys.executable, "-m", "thinksafe.cli", *map(str, base), "--out", str(out), "--base-url", server.url]
        for kind, value in plan:
            seen = len(server.log)
            proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if kind == "startup":
                time.sleep(value)
            else:
                deadline = time.time() + 30
                while len(server.log) < seen + value and proc.poll() is None and time.time() < deadline:
                    time.sleep(0.005)
            assert proc.poll() is None, "the run finished before the kill point"
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            done = committed(out)
            at_kill = len(server.log)
            server.wait_idle()
            # What the server answered after the kill was in flight when the client died.
            assert len(server.log) - at_kill <= CONCURRENCY
            marks.append((len(server.log), done))
        final = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert final.returncode == 0, final.stderr
    kills = len(marks)
    assert kills >= 5
    for start, done in marks:  # nothing committed before a kill is asked again after it
        asked_after = {r["key"] for r in server.log[start:]}
        assert not asked_after & {key_of[sid] for sid in done}
    counts = Counter(r["key"] for r in server.log)
    assert set(counts) == set(key_of.values())
    assert max(counts.values()) <= 1 + kills
    # Asked again after a kill: the requests in flight, plus answers that arrived within the store's
    # group-commit bound (5 ms; with 0.1 s replies, at most one per worker) before it.
    assert sum(counts.values()) - len(counts) <= kills * 2 * CONCURRENCY
    with ScriptedServer(lambda r: Reply(answer[r.key])) as clean:
        cli(*base, "--out", tmp_path / "clean", "--base-url", clean.url)
    assert read_metrics(out) == read_metrics(tmp_path / "clean")
    clean_rows = read_samples(tmp_path / "clean")
    for sid, row in read_samples(out).items():
        assert row["error"] is None
        assert {k: row[k] for k in ("reasoning", "answer", "judgments")} == \
               {k: clean_rows[sid][k] for k in ("reasoning", "answer", "judgments")}
    committed(out)
