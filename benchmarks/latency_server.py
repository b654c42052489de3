"""A lean OpenAI-compatible server for throughput measurements.

Every ``POST .../chat/completions`` is answered after a fixed latency with a
short thinking and a refusal, with unlimited slots (no queue: every request waits exactly the
latency). It runs in its own process on asyncio, so the server spends little
CPU per request and the client under test gets the rest of the machine. The
server keeps its own request log (start and end times, from its clock) and
hands it over on ``GET /log`` (``GET /log?reset`` also clears it).

Start it with :func:`start` (returns the process and its base URL).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing as mp
import socket
import time
from typing import Any

REPLY = json.dumps({
    "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": "bench",
    "choices": [{"index": 0, "finish_reason": "stop",
                 "message": {"role": "assistant",
                             "content": "<think>Request @@: the user asks for steps.</think>"
                                        "I cannot help with that (request @@)."}}],
    "usage": {"prompt_tokens": 10, "completion_tokens": 8, "total_tokens": 18},
}).encode()
"""Each reply names its request's number (at ``@@``), so that no two texts are
the same: a client cannot save work by remembering texts it judged."""


def _response(status: str, body: bytes) -> bytes:
    head = (f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: keep-alive\r\n\r\n")
    return head.encode() + body


class _Server:
    def __init__(self, latency: float):
        self.latency = latency
        self.log: list[tuple[float, float]] = []
        self.served = 0

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                start = time.time()
                line, *headers = head.decode("latin-1").split("\r\n")
                length = 0
                for h in headers:
                    if h[:15].lower() == "content-length:":
                        length = int(h[15:])
                if length:
                    await reader.readexactly(length)
                writer.write(await self.answer(line, start))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def answer(self, line: str, start: float) -> bytes:
        method, target, _ = line.split(" ", 2)
        if method == "GET" and target.startswith("/log"):
            body = json.dumps(self.log).encode()
            if "reset" in target:
                self.log = []
            return _response("200 OK", body)
        if method == "GET":
            return _response("200 OK", b'{"object": "list", "data": [{"id": "bench", "object": "model"}]}')
        self.served += 1
        reply = REPLY.replace(b"@@", str(self.served).encode())
        await asyncio.sleep(self.latency)
        self.log.append((start, time.time()))
        return _response("200 OK", reply)


def _serve(sock: socket.socket, latency: float) -> None:
    async def main() -> None:
        server = await asyncio.start_server(_Server(latency).handle, sock=sock, backlog=4096,
                                            limit=1 << 24)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start(latency: float) -> tuple[mp.Process, str]:
    """A server process answering after ``latency`` seconds; returns it and its ``/v1`` URL."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(4096)
    proc = mp.get_context("fork").Process(target=_serve, args=(sock, latency), daemon=True)
    proc.start()
    port = sock.getsockname()[1]
    sock.close()
    return proc, f"http://127.0.0.1:{port}/v1"


def fetch_log(url: str, reset: bool = True) -> list[tuple[float, float]]:
    """The server's (start, end) times of every answered request."""
    import urllib.request

    base = url.rsplit("/v1", 1)[0]
    with urllib.request.urlopen(f"{base}/log{'?reset' if reset else ''}") as resp:  # noqa: S310 - loopback
        data: Any = json.loads(resp.read())
    return [tuple(x) for x in data]


def achieved_ratios(log: list[tuple[float, float]], concurrency: int, latency: float) -> tuple[float, float]:
    """(steady, overall) achieved / ideal (concurrency / latency) from a request log: completions
    per second in the middle 80% of the run, and over the whole run."""
    first, last = min(s for s, _ in log), max(e for _, e in log)
    lo, hi = first + 0.1 * (last - first), last - 0.1 * (last - first)
    steady = sum(1 for _, e in log if lo <= e <= hi) / (hi - lo)
    ideal = concurrency / latency
    return steady / ideal, len(log) / (last - first) / ideal
