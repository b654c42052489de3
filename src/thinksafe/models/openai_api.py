"""Any OpenAI-compatible server (vLLM, SGLang, Ollama, OpenAI), or a fleet of
them, over aiohttp: images as base64 data URLs, our own retry policy, a
per-request timeout, least-outstanding routing over several servers and an
adaptive in-flight limit (see :mod:`.fleet`).

Why aiohttp and plain JSON: measured side by side (``benchmarks/http_clients.py``,
README "Speed"), aiohttp keeps a 0.2 s server saturated at 64 and 256
requests in flight for about 0.3 ms of client CPU per request, while the
``openai`` client over its httpx pool costs 2.6 ms and reaches a third of the
ideal rate at 256; importing the ``openai`` types alone takes 0.7 s of start-up.
Replies are read as the documented chat-completion JSON.

The API key is read from the environment, kept only in the request headers,
and blanked out of every error message (a server may echo headers back).
"""

from __future__ import annotations

import asyncio
import base64
import json
import mimetypes
import os
import time
from pathlib import Path
from typing import Any

from ..records import Completion
from .base import Backend, BackendError, GenerationSettings, Message
from .fleet import AdaptiveLimit, Endpoint, Fleet, split_urls
from .retry import RetryDecision, RetryPolicy, with_retries

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
_OVERLOAD_STATUS = {429, 503}
DEFAULT_URL = "https://api.openai.com/v1"


class HTTPStatusError(Exception):
    """The server answered with an error status."""

    def __init__(self, status: int, retry_after: float | None, detail: str):
        super().__init__(f"HTTP {status}: {detail}" if detail else f"HTTP {status}")
        self.status, self.retry_after = status, retry_after


class BadResponse(Exception):
    """The server's reply is not a chat completion (malformed JSON, no choices)."""


_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp", ".gif": "image/gif"}


def _data_url(path: str) -> bytes:
    """The file's own bytes as a data URL (no re-encoding, so nothing is lost)."""
    mime = _MIME.get(os.path.splitext(path)[1].lower()) or mimetypes.guess_type(path)[0] or "image/png"
    return b"data:" + mime.encode() + b";base64," + base64.b64encode(Path(path).read_bytes())


PREPARE_MAX_BYTES = 256 * 1024
"""Images up to this size are encoded ahead of time (:meth:`OpenAIBackend.prepare`);
larger ones when sent, so the requests waiting in the run's queue stay small."""


def _part_data_url(part: dict[str, Any]) -> bytes:
    """An image part's data URL: encoded ahead of time (:func:`prepare_messages`) or now."""
    data = part.get("data_url")
    return data if data is not None else _data_url(part["path"])


def _image_url(part: dict[str, Any]) -> str:
    return _part_data_url(part).decode()


def to_openai_messages(messages: list[Message], image_url=_image_url) -> list[dict[str, Any]]:
    """``image_url(part)`` gives the URL of an image part."""
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [{"type": "image_url", "image_url": {"url": image_url(p)}}
                       if p["type"] == "image" else {"type": "text", "text": p["text"]} for p in content]
        out.append({"role": m["role"], "content": content})
    return out


def prepare_messages(messages: list[Message]) -> list[Message]:
    """The messages with their small images read and encoded (key ``data_url``, bytes)."""
    def part(p: dict[str, Any]) -> dict[str, Any]:
        if p["type"] != "image" or "data_url" in p:
            return p
        try:
            if os.path.getsize(p["path"]) <= PREPARE_MAX_BYTES:
                return {**p, "data_url": _data_url(p["path"])}
        except OSError:  # reported when the request is sent, on the sample
            pass
        return p

    return [{**m, "content": [part(p) for p in m["content"]]} if isinstance(m["content"], list) else m
            for m in messages]


def request_body(model: str, messages: list[Message], settings: GenerationSettings) -> bytes:
    """The encoded request: built once per request, reused by its retries.

    Images are spliced in as bytes after the JSON encoding: base64 needs no
    escaping, and running a large image through the JSON encoder (and str <->
    bytes twice) was the largest CPU cost of a request.
    """
    images: list[dict[str, Any]] = []

    def placeholder(part: dict[str, Any]) -> str:
        images.append(part)
        return _IMAGE_SLOT

    body: dict[str, Any] = {"model": model, "messages": to_openai_messages(messages, placeholder),
                            "max_tokens": settings.max_tokens, "temperature": settings.temperature,
                            "top_p": settings.top_p}
    if settings.seed is not None:
        body["seed"] = settings.seed
    body.update(settings.extra.get("extra_body") or {})
    parts = json.dumps(body).encode().split(_IMAGE_SLOT.encode())
    if len(parts) != len(images) + 1:  # the slot text appeared in the prompt itself
        return json.dumps({**body, "messages": to_openai_messages(messages)}).encode()
    out = [parts[0]]
    for image, rest in zip(images, parts[1:]):
        out += [_part_data_url(image), rest]
    return b"".join(out)


_IMAGE_SLOT = "@@thinksafe-image-slot@@"


def _images_to_read(messages: list[Message]) -> bool:
    """Whether some image of the request is not encoded yet."""
    return any(isinstance(m["content"], list) and any(p["type"] == "image" and "data_url" not in p
                                                      for p in m["content"]) for m in messages)


def _retry_after(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date; rare enough to fall back to backoff
        return None


def _error_detail(text: str) -> str:
    """The server's error message, short."""
    try:
        data = json.loads(text)
        text = str(data["error"]["message"] if isinstance(data.get("error"), dict) else data.get("error", text))
    except (ValueError, AttributeError, KeyError, TypeError):
        pass
    return " ".join(text.split())[:300]


def _proxy_configured() -> bool:
    """Honour HTTP(S)_PROXY when set; otherwise skip aiohttp's per-request proxy and netrc lookups."""
    return any(k.lower() in ("http_proxy", "https_proxy", "all_proxy") for k in os.environ)


def _unreachable(exc: BaseException) -> bool:
    """The server could not be reached or dropped the connection (not a timeout)."""
    import aiohttp

    return isinstance(exc, aiohttp.ClientConnectionError) and not isinstance(exc, TimeoutError)


def parse_reply(raw: bytes) -> dict[str, Any]:
    """The first choice of a chat completion, with ``usage``; BadResponse when it is not one."""
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise BadResponse(f"malformed JSON in the reply ({exc})") from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices:
        raise BadResponse("the server returned no choices")
    choice = choices[0]
    if not isinstance(choice, dict) or not isinstance(choice.get("message"), dict):
        raise BadResponse("the reply's first choice has no message")
    return {"choice": choice, "usage": data.get("usage") if isinstance(data.get("usage"), dict) else {}}


class OpenAIBackend(Backend):
    """``openai/NAME`` against ``base_url`` (one URL, several comma-separated, or a list)."""

    def __init__(self, name: str, base_url: str | list[str] | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 16, timeout_s: float = 600.0, retry: RetryPolicy | None = None):
        self.name = name
        self.spec = f"openai/{name}"
        urls = split_urls(base_url) or [os.environ.get("OPENAI_BASE_URL", DEFAULT_URL).rstrip("/")]
        self.base_url = ",".join(urls)
        self.fleet = Fleet(urls, probe=self._probe)
        self.limit = AdaptiveLimit(concurrency)
        self._concurrency = concurrency
        self.timeout_s = timeout_s
        self.retry = retry or RetryPolicy()
        # vLLM and friends accept any key; OpenAI itself needs the real one.
        self._key = os.environ.get(api_key_env) or "EMPTY"
        self._headers = {"Authorization": f"Bearer {self._key}", "Content-Type": "application/json"}
        self._session: Any = None
        self.requests = 0
        self.attempts = 0

    def fingerprint_config(self) -> dict[str, Any]:
        return {"spec": self.spec}

    @property
    def concurrency(self) -> int:
        return self._concurrency

    def prepare(self, messages: list[Message], settings: GenerationSettings) -> list[Message]:
        return prepare_messages(messages)

    async def complete(self, messages: list[Message], settings: GenerationSettings) -> Completion:
        if _images_to_read(messages):  # file reads and base64 stay off the event loop
            body = await asyncio.to_thread(request_body, self.name, messages, settings)
        else:
            body = request_body(self.name, messages, settings)
        start = time.perf_counter()
        self.requests += 1
        try:
            reply, _ = await with_retries(lambda: self._post(body), self._classify, self.retry)
        except Exception as exc:  # noqa: BLE001 - reported on the sample
            raise BackendError(self._redact(f"{self.spec}: {type(exc).__name__}: {exc}")) from None
        return _completion(reply, time.perf_counter() - start)

    async def _post(self, body: bytes) -> dict[str, Any]:
        ticket = await self.limit.acquire()
        self.attempts += 1
        endpoint = self.fleet.pick()
        ok = unreachable = False
        try:
            reply = await self._send(endpoint, body)
            ok = True
            return reply
        except HTTPStatusError as exc:
            if exc.status in _OVERLOAD_STATUS:
                self.limit.overload(ticket)
            raise
        except Exception as exc:
            unreachable = _unreachable(exc)
            raise
        finally:
            self.fleet.release(endpoint, ok, unreachable)
            self.limit.release()
            if ok:
                self.limit.success()

    async def _send(self, endpoint: Endpoint, body: bytes) -> dict[str, Any]:
        async with self._client().post(f"{endpoint.url}/chat/completions", data=body, headers=self._headers) as resp:
            raw = await resp.read()
            if resp.status != 200:
                raise HTTPStatusError(resp.status, _retry_after(resp.headers.get("Retry-After")),
                                      _error_detail(self._redact(raw.decode("utf-8", "replace"))))
        return parse_reply(raw)

    def _classify(self, exc: BaseException) -> RetryDecision:
        """Transient (overload, server error, timeout, connection, bad reply) or final."""
        import aiohttp

        if isinstance(exc, HTTPStatusError):
            return RetryDecision(exc.status in _RETRY_STATUS, exc.retry_after, f"HTTP {exc.status}")
        if isinstance(exc, (BadResponse, TimeoutError, aiohttp.ClientError)):
            # Another live server of the fleet can take the request at once.
            now = 0.0 if _unreachable(exc) and self.fleet.any_up() else None
            return RetryDecision(True, now, type(exc).__name__)
        return RetryDecision(False, reason=type(exc).__name__)

    def _client(self) -> Any:
        if self._session is None:
            import aiohttp

            # No connection cap here: AdaptiveLimit bounds the requests in flight.
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=self.timeout_s),
                trust_env=_proxy_configured())
        return self._session

    async def _probe(self, url: str) -> bool:
        """Whether a removed server answers ``GET /models`` again (any HTTP status will do)."""
        import aiohttp

        try:
            async with self._client().get(f"{url}/models", headers=self._headers,
                                          timeout=aiohttp.ClientTimeout(total=5)) as resp:
                await resp.read()
                return resp.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False

    def _redact(self, text: str) -> str:
        # Too short a key would blank out ordinary words; real keys are long.
        return text.replace(self._key, "***") if len(self._key) >= 8 else text

    def stats(self) -> dict[str, Any]:
        return {"requests": self.requests, "retries": self.attempts - self.requests, **self.limit.stats(),
                "endpoints": self.fleet.stats()}

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _completion(reply: dict[str, Any], latency: float) -> Completion:
    choice, usage = reply["choice"], reply["usage"]
    msg = choice["message"]
    # vLLM/SGLang put the thinking in `reasoning_content` (newer vLLM: `reasoning`).
    reasoning = msg.get("reasoning_content") or msg.get("reasoning")
    details = usage.get("completion_tokens_details") or {}
    content = msg.get("content")
    return Completion(
        content=content if isinstance(content, str) else "",
        reasoning_content=reasoning if isinstance(reasoning, str) else None,
        finish_reason=choice.get("finish_reason"),
        prompt_tokens=usage.get("prompt_tokens"),
        completion_tokens=usage.get("completion_tokens"),
        reasoning_tokens=details.get("reasoning_tokens") if isinstance(details, dict) else None,
        latency_s=latency,
    )
