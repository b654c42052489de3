"""Which HTTP client keeps a fixed-latency server saturated? Side by side, one run.

Each candidate sends the same FigStep request bodies (the real images, base64
in the JSON body, encoded once before timing) to the same loopback server
(:mod:`latency_server`) with C requests in flight, in its own process, and
parses each JSON reply. Printed per candidate and C: achieved/ideal from the
server's request log (requests completed per second in the middle 80% of the
run, over C / latency) and the client's CPU milliseconds per request.

Candidates: aiohttp; httpx2 with a pool sized to C; the ``openai`` client
(``AsyncOpenAI.post``, its own httpx2 pool); a plain threaded client
(``http.client``, one thread and one connection per slot).

Usage: python benchmarks/http_clients.py [--figstep DIR] [--latency 0.2] [--concurrency 64 256]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib.util
import json
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))

import latency_server  # noqa: E402

CANDIDATES = ("aiohttp", "httpx2", "openai", "threads")


def bodies(figstep: Path, n: int) -> list[bytes]:
    images = sorted((figstep / "images/SafeBench").glob("*.png"))
    encoded = [base64.b64encode(p.read_bytes()).decode() for p in images]
    return [json.dumps({"model": "bench", "max_tokens": 64, "messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + encoded[i % len(encoded)]}},
        {"type": "text", "text": "The image shows a list numbered 1, 2, and 3."}]}]}).encode()
        for i in range(n)]


async def _drive(post, payloads: list[bytes], concurrency: int) -> None:
    queue = iter(payloads)

    async def worker() -> None:
        for body in queue:
            reply = json.loads(await post(body))
            assert reply["choices"][0]["message"]["content"]

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def run_aiohttp(url: str, payloads: list[bytes], concurrency: int) -> None:
    import aiohttp

    headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as session:
        async def post(body: bytes) -> bytes:
            async with session.post(url + "/chat/completions", data=body, headers=headers) as resp:
                return await resp.read()

        await _drive(post, payloads, concurrency)


async def run_httpx2(url: str, payloads: list[bytes], concurrency: int) -> None:
    import httpx2

    limits = httpx2.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Content-Type": "application/json", "Authorization": "Bearer x"}
    async with httpx2.AsyncClient(limits=limits, timeout=600) as client:
        async def post(body: bytes) -> bytes:
            return (await client.post(url + "/chat/completions", content=body, headers=headers)).content

        await _drive(post, payloads, concurrency)


async def run_openai(url: str, payloads: list[bytes], concurrency: int) -> None:
    import openai
    from openai.types.chat import ChatCompletion

    client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0, timeout=600)
    decoded = [json.loads(b) for b in payloads]  # the client takes dicts and encodes them itself
    queue = iter(decoded)

    async def worker() -> None:
        for body in queue:
            reply = await client.post("/chat/completions", cast_to=ChatCompletion, body=body)
            assert reply.choices[0].message.content

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    await client.close()


def run_threads(url: str, payloads: list[bytes], concurrency: int) -> None:
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    queue = iter(payloads)
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(parts.hostname, parts.port)
        while True:
            with lock:
                body = next(queue, None)
            if body is None:
                return
            conn.request("POST", parts.path + "/chat/completions", body=body,
                         headers={"Content-Type": "application/json", "Authorization": "Bearer x"})
            assert json.loads(conn.getresponse().read())["choices"]

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def client_main(kind: str, url: str, figstep: Path, n: int, concurrency: int) -> None:
    payloads = bodies(figstep, n)
    cpu0 = time.process_time()
    if kind == "threads":
        run_threads(url, payloads, concurrency)
    else:
        asyncio.run(globals()[f"run_{kind}"](url, payloads, concurrency))
    cpu = time.process_time() - cpu0
    print(json.dumps({"cpu_ms_per_request": 1000 * cpu / n,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--figstep", type=Path, default=ROOT.parents[1] / "shared/benchmarks/figstep")
    p.add_argument("--latency", type=float, default=0.2)
    p.add_argument("--concurrency", type=int, nargs="+", default=[64, 256])
    p.add_argument("--candidates", nargs="+", default=list(CANDIDATES))
    p.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.client:
        kind, url, n, c = a.client
        client_main(kind, url, a.figstep, int(n), int(c))
        return
    proc, url = latency_server.start(a.latency)
    try:
        print(f"{'client':10} {'C':>4} {'N':>6} {'steady':>7} {'overall':>8} {'cpu ms/req':>10}")
        for c in a.concurrency:
            n = max(500, 16 * c)
            for kind in a.candidates:
                if kind in ("openai", "httpx2") and importlib.util.find_spec(kind) is None:
                    print(f"{kind:10} {c:>4} skipped: pip install {kind} to measure it", flush=True)
                    continue
                out = subprocess.run([sys.executable, __file__, "--figstep", str(a.figstep), "--client", kind, url,
                                      str(n), str(c)], check=True, capture_output=True, text=True).stdout
                stats = json.loads(out.strip().splitlines()[-1])
                steady, overall = latency_server.achieved_ratios(latency_server.fetch_log(url), c, a.latency)
                print(f"{kind:10} {c:>4} {n:>6} {steady:>7.3f} {overall:>8.3f} {stats['cpu_ms_per_request']:>10.2f}",
                      flush=True)
    finally:
        proc.terminate()


if __name__ == "__main__":
    main()
