"""Measure what `thinksafe eval` costs against a server, in one run.

* saturation: achieved requests/s against a loopback server with a fixed
  latency, as a ratio of the ideal concurrency / latency (goal >= 0.9);
* start-up: wall time of `thinksafe --help` and whether an API-only eval
  imported torch;
* streaming: peak RSS of an eval over N synthetic FigStep rows (images are
  hard links to one published image) against the same run over N/10 rows.

Usage: python benchmarks/eval_throughput.py [--figstep ../shared/benchmarks/figstep]
       [--latency 0.2] [--concurrency 16] [--rows 30000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from scripted_server import Reply, ScriptedServer  # noqa: E402


def run_eval(url: str, data: Path, subset: str, out: Path, concurrency: int) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "thinksafe.cli", "eval", "--benchmark", "figstep", "--subset", subset,
                    "--data", str(data), "--model", "openai/bench", "--base-url", url, "--out", str(out),
                    "--concurrency", str(concurrency), "--quiet"], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def saturation(figstep: Path, latency: float, concurrency: int) -> None:
    with ScriptedServer(lambda r: Reply("<think>t</think>I cannot help."), latency=latency) as server, \
            tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_eval(server.url, figstep, "full", Path(tmp) / "run", concurrency)
        log = server.log
        first, last = min(r["start"] for r in log), max(r["end"] for r in log)
        achieved = len(log) / (last - first)
        ideal = concurrency / latency
        # Steady state: requests completed between the first and last 10% of the run
        # (start-up and the final drain cannot be saturated by definition).
        lo, hi = first + 0.1 * (last - first), last - 0.1 * (last - first)
        steady = sum(1 for r in log if lo <= r["end"] <= hi) / (hi - lo)
        print(f"saturation: {len(log)} requests, latency {latency}s, concurrency {concurrency}: "
              f"{achieved:.1f} req/s vs ideal {ideal:.1f} -> ratio {achieved / ideal:.3f} overall, "
              f"{steady / ideal:.3f} steady state (max in flight {server.max_in_flight}; "
              f"whole command {time.perf_counter() - t0:.1f}s)")


def startup() -> None:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "thinksafe.cli", "--help"], check=True, stdout=subprocess.DEVNULL)
    help_s = time.perf_counter() - t0
    code = ("import sys, asyncio; from thinksafe.evaluate import EvalConfig; from thinksafe.models import get_backend;"
            "get_backend('openai/x', base_url='http://127.0.0.1:1/v1'); import thinksafe.cli.app;"
            "print('torch' in sys.modules)")
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


def peak_rss_mb(url: str, data: Path, out: Path) -> tuple[float, float]:
    code = ("import resource, runpy, sys; sys.argv = ['thinksafe'] + sys.argv[1:];"
            "from thinksafe.cli.app import app\ntry:\n    app()\nexcept SystemExit:\n    pass\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", code, "eval", "--benchmark", "figstep", "--data", str(data),
                          "--model", "openai/bench", "--base-url", url, "--out", str(out), "--concurrency", "64",
                          "--quiet"], check=True, capture_output=True, text=True)
    return float(res.stdout.strip().splitlines()[-1]), time.perf_counter() - t0


def streaming(figstep: Path, rows: int) -> None:
    with ScriptedServer(lambda r: Reply("ok")) as server, tempfile.TemporaryDirectory() as tmp:
        small = synthetic_figstep(figstep, rows // 10, Path(tmp) / "small")
        big = synthetic_figstep(figstep, rows, Path(tmp) / "big")
        rss_small, t_small = peak_rss_mb(server.url, small, Path(tmp) / "run-small")
        rss_big, t_big = peak_rss_mb(server.url, big, Path(tmp) / "run-big")
        print(f"streaming: peak RSS {rss_small:.0f} MB for {rows // 10} rows ({t_small:.0f}s), "
              f"{rss_big:.0f} MB for {rows} rows ({t_big:.0f}s): ratio {rss_big / rss_small:.2f}")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--figstep", type=Path, default=ROOT.parent / "shared/benchmarks/figstep")
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--rows", type=int, default=30000)
    p.add_argument("--skip-streaming", action="store_true")
    a = p.parse_args()
    startup()
    saturation(a.figstep, a.latency, a.concurrency)
    if not a.skip_streaming:
        streaming(a.figstep, a.rows)


if __name__ == "__main__":
    main()
