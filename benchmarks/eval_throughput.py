"""Measure what `thinksafe eval` costs against OpenAI-compatible servers, in one run.

* saturation: `thinksafe eval` on FigStep (its 500 rows and real images) against
  loopback servers with a fixed latency and unlimited slots
  (:mod:`latency_server`, one process each), for C in {16, 64, 256}, one and two
  endpoints, judge on (the refusal rule judge, every target) and off. The rows
  are cycled to 16 x C samples when C > 31, so that start-up and the final
  drain are a small part of the run. Printed: achieved / ideal (C / latency)
  from the servers' own request logs -- "steady": completions per second in
  the middle 80% of the run, "overall": all requests over first start to last
  end; start-up (process start to the first request the server sees); CPU
  milliseconds per sample (user + system, the client's process and its judge
  worker together, start-up and the final report included); peak RSS of the
  client's process; and the same for a minimal threaded reference client run
  on the same workload in the same session (load, encode, post, parse, the
  refusal rule on the thinking, the answer and the whole output; no store, no
  checks), with the ratio thinksafe / reference of the steady rates. Each
  server reply names its request's number, so no two texts to judge are the
  same. The load average is printed with the table.
* start-up: wall time of `thinksafe --help`, and whether an API-only eval
  imports torch (thinksafe's bytecode is written first, as installing it does);
* streaming: peak RSS of an eval over N synthetic FigStep rows (images are hard
  links to one published image) against the same run over N/10 rows.

Client and servers share the machine, so the ratios are what one machine can
do; on a machine shared with other work, compare the ratios of one run.

Usage: python benchmarks/eval_throughput.py [--figstep ../shared/benchmarks/figstep]
       [--latency 0.2] [--concurrency 16 64 256] [--endpoints 1 2] [--rows 30000] [--skip-streaming]
"""

from __future__ import annotations

import argparse
import base64
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))

import latency_server  # noqa: E402
from scripted_server import Reply, ScriptedServer  # noqa: E402

# Runs `thinksafe` in-process after optionally registering a judge that judges
# nothing ("judge off"), then prints the peak RSS and the CPU seconds of the
# process and of its worker (the judge's, at 64 or more requests in flight).
LAUNCHER = """
import resource, sys
if sys.argv[1] == "--judge-off":
    del sys.argv[1]
    from thinksafe.judges import register_judge
    from thinksafe.judges.base import Judge

    class Off(Judge):
        name, targets = "off", ()

        async def judge(self, sample, text, target):
            raise AssertionError

    register_judge("off")(lambda bench=None, **_: Off())
from thinksafe.cli.app import app
sys.argv[0] = "thinksafe"
try:
    app()
except SystemExit as exc:
    if exc.code:
        raise
usage, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
print(usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime + workers.ru_utime + workers.ru_stime)
"""


# ---- workload ----------------------------------------------------------------------------
def figstep_rows(figstep: Path) -> list[dict[str, str]]:
    with open(figstep / "question/safebench.csv", newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def cycled_figstep(figstep: Path, n: int, root: Path) -> Path:
    """FigStep's rows and images cycled to ``n`` samples (ids made unique; images hard-linked)."""
    rows = figstep_rows(figstep)
    if n <= len(rows):
        return figstep
    (root / "question").mkdir(parents=True)
    (root / "images/SafeBench").mkdir(parents=True)
    with open(root / "question/safebench.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for i in range(n):
            row = dict(rows[i % len(rows)])
            source = figstep / f"images/SafeBench/query_ForbidQI_{row['category_id']}_{row['task_id']}_6.png"
            row["task_id"] = str(int(row["task_id"]) + 1000 * (i // len(rows)))
            w.writerow(row)
            os.link(source, root / f"images/SafeBench/query_ForbidQI_{row['category_id']}_{row['task_id']}_6.png")
    return root


# ---- one measured client run ---------------------------------------------------------------
def thinksafe_run(urls: list[str], data: Path, out: Path, concurrency: int, judge: bool) -> dict:
    args = [sys.executable, "-c", LAUNCHER, *([] if judge else ["--judge-off"]), "eval", "--benchmark", "figstep",
            "--data", str(data), "--model", "openai/bench", "--base-url", ",".join(urls), "--out", str(out),
            "--concurrency", str(concurrency), "--judge", "refusal" if judge else "off", "--quiet"]
    spawned = time.time()
    res = subprocess.run(args, check=True, capture_output=True, text=True)
    return {"spawned": spawned, **_usage(res.stdout)}


def _usage(stdout: str) -> dict:
    """Peak RSS and CPU seconds (user + system), as a client process printed them on its last line."""
    rss, cpu = stdout.strip().splitlines()[-1].split()
    return {"rss_mb": float(rss), "cpu_s": float(cpu)}


def reference_client(urls: list[str], data: Path, concurrency: int) -> None:
    """The minimal client: C threads, one keep-alive connection each, the refusal rule on the
    thinking, the answer and the whole output (as the refusal judge judges every target)."""
    import http.client
    from urllib.parse import urlsplit

    from thinksafe.benchmarks.figstep import FIGSTEP_PROMPT
    from thinksafe.judges.refusal import classify

    rows = iter(figstep_rows(data))
    lock = threading.Lock()
    verdicts: list[bool] = []

    def worker(url: str) -> None:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port)
        while True:
            with lock:
                row = next(rows, None)
            if row is None:
                return
            image = data / f"images/SafeBench/query_ForbidQI_{row['category_id']}_{row['task_id']}_6.png"
            body = json.dumps({"model": "bench", "max_tokens": 4096, "temperature": 0.0, "messages": [
                {"role": "user", "content": [
                    {"type": "image_url",
                     "image_url": {"url": "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode()}},
                    {"type": "text", "text": FIGSTEP_PROMPT}]}]})
            conn.request("POST", parts.path + "/chat/completions", body=body,
                         headers={"Content-Type": "application/json", "Authorization": "Bearer EMPTY"})
            reply = json.loads(conn.getresponse().read())
            full = reply["choices"][0]["message"]["content"]
            thinking, _, answer = full.rpartition("</think>")
            refused = [classify(text).refusal for text in (thinking.removeprefix("<think>"), answer, full)]
            with lock:
                verdicts.append(refused)

    threads = [threading.Thread(target=worker, args=(urls[i % len(urls)],)) for i in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def reference_run(urls: list[str], data: Path, concurrency: int) -> dict:
    code = ("import sys, json; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
            "import eval_throughput as e; e.reference_client(json.loads(sys.argv[2]), Path(sys.argv[3]), "
            "int(sys.argv[4]));"
            "import resource; u = resource.getrusage(resource.RUSAGE_SELF); "
            "print(u.ru_maxrss / 1024, u.ru_utime + u.ru_stime)")
    spawned = time.time()
    res = subprocess.run([sys.executable, "-c", code, str(ROOT / "benchmarks"), json.dumps(urls), str(data),
                          str(concurrency)], check=True, capture_output=True, text=True)
    return {"spawned": spawned, **_usage(res.stdout)}


def saturation(figstep: Path, latency: float, concurrencies: list[int], endpoint_counts: list[int]) -> None:
    servers = [latency_server.start(latency) for _ in range(max(endpoint_counts))]
    print(f"saturation: FigStep rows and images, server latency {latency}s; achieved / ideal (C / latency); "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"{'client':10} {'C':>4} {'servers':>7} {'judge':>5} {'N':>5} {'steady':>7} {'overall':>7} "
          f"{'start-up':>8} {'CPU ms/sample':>13} {'RSS MB':>7} {'steady vs ref':>13}")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for c in concurrencies:
                n = 500 if c < 32 else 16 * c
                data = cycled_figstep(figstep, n, Path(tmp) / f"data-{c}")
                for k in endpoint_counts:
                    urls = [url for _, url in servers[:k]]
                    ref = _measure(urls, c, latency, lambda: reference_run(urls, data, c))
                    _print("reference", c, k, "on", n, ref, ref)
                    for judge in (True, False):
                        out = Path(tmp) / f"run-{c}-{k}-{judge}"
                        got = _measure(urls, c, latency, lambda: thinksafe_run(urls, data, out, c, judge))
                        _print("thinksafe", c, k, "on" if judge else "off", n, got, ref)
    finally:
        for proc, _ in servers:
            proc.terminate()


def _measure(urls: list[str], concurrency: int, latency: float, run) -> dict:
    for url in urls:
        latency_server.fetch_log(url)  # reset
    info = run()
    log = [entry for url in urls for entry in latency_server.fetch_log(url)]
    steady, overall = latency_server.achieved_ratios(log, concurrency, latency)
    return {**info, "n": len(log), "steady": steady, "overall": overall,
            "startup": min(s for s, _ in log) - info["spawned"]}


def _print(client: str, c: int, k: int, judge: str, n: int, got: dict, ref: dict) -> None:
    assert got["n"] == n, (client, got["n"], n)  # every sample answered once
    print(f"{client:10} {c:>4} {k:>7} {judge:>5} {n:>5} {got['steady']:>7.3f} {got['overall']:>7.3f} "
          f"{got['startup']:>7.2f}s {1000 * got['cpu_s'] / n:>13.2f} {got['rss_mb']:>7.0f} "
          f"{got['steady'] / ref['steady']:>13.3f}", flush=True)


# ---- start-up and streaming -----------------------------------------------------------------
def compile_bytecode() -> None:
    """Write thinksafe's bytecode first, as installing it does, so that start-up is what a user
    sees even where PYTHONDONTWRITEBYTECODE is set (else every module is compiled on every start)."""
    import compileall

    import thinksafe

    compileall.compile_dir(Path(thinksafe.__file__).parent, quiet=1)


def startup() -> None:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "thinksafe.cli", "--help"], check=True, stdout=subprocess.DEVNULL)
    help_s = time.perf_counter() - t0
    code = ("import sys, asyncio; from thinksafe.evaluate import EvalConfig; from thinksafe.models import get_backend;"
            "get_backend('openai/x', base_url='http://127.0.0.1:1/v1'); import thinksafe.cli.app;"
            "import thinksafe.models.openai_api; print('torch' in sys.modules)")
    torch = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    print(f"start-up: `thinksafe --help` {help_s:.2f}s; torch imported on the API path: {torch}")


def synthetic_figstep(figstep: Path, rows: int, root: Path) -> Path:
    (root / "question").mkdir(parents=True)
    (root / "images/SafeBench").mkdir(parents=True)
    source = figstep / "images/SafeBench/query_ForbidQI_1_1_6.png"
    with open(root / "question/safebench.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["dataset", "category_id", "task_id", "category_name", "question", "instruction"])
        for i in range(rows):
            cat, task = 1 + i % 10, 1 + i // 10
            w.writerow(["ForbidQI", cat, task, f"cat{cat}", "q", "Steps to do a thing."])
            os.link(source, root / f"images/SafeBench/query_ForbidQI_{cat}_{task}_6.png")
    return root


def streaming(figstep: Path, rows: int) -> None:
    with ScriptedServer(lambda r: Reply("ok")) as server, tempfile.TemporaryDirectory() as tmp:
        results = []
        for n in (rows // 10, rows):
            data = synthetic_figstep(figstep, n, Path(tmp) / f"data-{n}")
            t0 = time.perf_counter()
            info = thinksafe_run([server.url], data, Path(tmp) / f"run-{n}", 64, judge=True)
            results.append((n, info["rss_mb"], time.perf_counter() - t0))
        (n1, rss1, t1), (n2, rss2, t2) = results
        print(f"streaming: peak RSS {rss1:.0f} MB for {n1} rows ({t1:.0f}s), {rss2:.0f} MB for {n2} rows "
              f"({t2:.0f}s): ratio {rss2 / rss1:.2f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--figstep", type=Path, default=ROOT.parent / "shared/benchmarks/figstep")
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 256])
    p.add_argument("--endpoints", type=int, nargs="+", default=[1, 2])
    p.add_argument("--rows", type=int, default=30000)
    p.add_argument("--skip-streaming", action="store_true")
    a = p.parse_args()
    compile_bytecode()
    startup()
    saturation(a.figstep, a.latency, a.concurrency, a.endpoints)
    if not a.skip_streaming:
        streaming(a.figstep, a.rows)


if __name__ == "__main__":
    main()
