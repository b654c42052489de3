"""A small scripted OpenAI-compatible server on loopback, for tests and benchmarks.

The test gives a ``responder(request) -> Reply`` function; the server answers
``POST /v1/chat/completions`` with what it returns, after an optional fixed
latency, and logs every request (thread-safe, optionally to a JSONL file so
that several processes' runs can be compared).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Reply:
    content: str = ""
    reasoning_content: str | None = None
    finish_reason: str = "stop"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Extra seconds before answering (to trigger client timeouts)."""
    raw: bytes | None = None
    """Sent as the whole HTTP response, then the connection is closed (b"": closed
    without a word). For faults: malformed JSON, a body cut halfway..."""


@dataclass
class Request:
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.body.get("messages", [])

    def parts(self, role: str | None = None) -> list[dict[str, Any]]:
        """Content parts of all messages (of one role when given)."""
        out: list[dict[str, Any]] = []
        for m in self.messages:
            if role and m.get("role") != role:
                continue
            c = m.get("content")
            out.extend([{"type": "text", "text": c}] if isinstance(c, str) else (c or []))
        return out

    @property
    def text(self) -> str:
        """All text of the user turns, joined."""
        return "\n".join(p["text"] for p in self.parts("user") if p.get("type") == "text")

    @property
    def system(self) -> str:
        return "\n".join(m["content"] for m in self.messages if m.get("role") == "system")

    @property
    def image_bytes(self) -> list[bytes]:
        urls = [p["image_url"]["url"] for p in self.parts() if p.get("type") == "image_url"]
        return [base64.b64decode(u.split(",", 1)[1]) for u in urls]

    @functools.cached_property
    def key(self) -> str:
        """Identifies the request's content: sha of its images and text."""
        h = hashlib.sha256(self.text.encode())
        for b in self.image_bytes:
            h.update(hashlib.sha256(b).digest())
        return h.hexdigest()[:16]


def file_key(text: str, image_paths: list[str | Path]) -> str:
    """The ``Request.key`` that a sample with this text and these image files produces."""
    h = hashlib.sha256(text.encode())
    for p in image_paths:
        h.update(hashlib.sha256(Path(p).read_bytes()).digest())
    return h.hexdigest()[:16]


class ScriptedServer:
    """Run with ``with ScriptedServer(responder) as s: ... s.url``."""

    def __init__(self, responder: Callable[[Request], Reply], latency: float = 0.0, log_path: Path | None = None,
                 port: int = 0):
        self.responder = responder
        self.latency = latency
        self.log_path = log_path
        self.log: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._reply_lock = threading.Lock()
        self._in_flight = 0
        self.max_in_flight = 0
        self.dead = False
        self._conns: set[Any] = set()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.dead:
            self._httpd.shutdown()
            self._httpd.server_close()

    @property
    def in_flight(self) -> int:
        return self._in_flight

    def kill(self) -> None:
        """Die like a crashed server: refuse new connections, drop open ones, answer nothing more.

        Every request in the log was answered in full before the kill; none after it.
        """
        with self._reply_lock:
            self.dead = True
        self._httpd.shutdown()
        self._httpd.server_close()
        for conn in list(self._conns):
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no handler is running (abandoned slow replies included)."""
        deadline = time.time() + timeout
        while self._in_flight and time.time() < deadline:
            time.sleep(0.01)

    def requests_for(self, key: str) -> list[dict[str, Any]]:
        return [r for r in self.log if r["key"] == key]

    def _record(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.log.append(entry)
            if self.log_path:
                with open(self.log_path, "a") as f:
                    f.write(json.dumps(entry) + "\n")

    def _enter(self, delta: int) -> None:
        with self._lock:
            self._in_flight += delta
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Headers and body go out in two writes; with Nagle on, the second
            # waits for the client's delayed ACK (~40 ms) and fakes latency.
            disable_nagle_algorithm = True

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

            def setup(self) -> None:
                super().setup()
                server._conns.add(self.connection)

            def finish(self) -> None:
                server._conns.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": "scripted", "object": "model"}]})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length) or b"{}")
                req = Request(body, dict(self.headers))
                start = time.time()
                server._enter(1)
                try:
                    reply = server.responder(req)
                    time.sleep(server.latency + reply.delay)
                    # Answer and log as one step, so that a killed server's log holds
                    # exactly the answers it sent.
                    with server._reply_lock:
                        if server.dead:
                            self.close_connection = True
                            return
                        if reply.raw is not None:
                            self._send_raw(reply.raw)
                        else:
                            self._reply(req, reply, start)
                        server._record({"key": req.key, "status": "raw" if reply.raw is not None else reply.status,
                                        "start": start, "end": time.time(), "model": body.get("model"),
                                        "auth": self.headers.get("Authorization", "")})
                finally:
                    server._enter(-1)

            def _send_raw(self, data: bytes) -> None:
                self.close_connection = True
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _reply(self, req: Request, reply: Reply, start: float) -> None:
                if reply.status != 200:
                    self._send(reply.status, {"error": {"message": f"scripted {reply.status}",
                                                        "type": "scripted"}}, reply.headers)
                    return
                message: dict[str, Any] = {"role": "assistant", "content": reply.content}
                if reply.reasoning_content is not None:
                    message["reasoning_content"] = reply.reasoning_content
                self._send(200, {
                    "id": "chatcmpl-scripted", "object": "chat.completion", "created": int(start),
                    "model": req.body.get("model", "scripted"),
                    "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
                    "usage": {"prompt_tokens": len(req.text.split()), "completion_tokens":
                              len(reply.content.split()) + len((reply.reasoning_content or "").split()),
                              "total_tokens": 0},
                }, reply.headers)

        return Handler
