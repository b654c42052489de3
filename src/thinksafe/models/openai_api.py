"""Any OpenAI-compatible server (vLLM, SGLang, Ollama, OpenAI) through the
async ``openai`` client: images as base64 data URLs, our own retry policy, a
per-request timeout. The API key is read from the environment and kept only
in the client object."""

from __future__ import annotations

import base64
import mimetypes
import os
import time
from pathlib import Path
from typing import Any

from ..records import Completion
from .base import Backend, BackendError, GenerationSettings, Message
from .retry import RetryDecision, RetryPolicy, with_retries

_RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


def image_data_url(path: str) -> str:
    """The file's own bytes as a data URL (no re-encoding, so nothing is lost)."""
    mime = mimetypes.guess_type(path)[0] or "image/png"
    data = Path(path).read_bytes()
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def to_openai_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [{"type": "image_url", "image_url": {"url": image_data_url(p["path"])}}
                       if p["type"] == "image" else {"type": "text", "text": p["text"]} for p in content]
        out.append({"role": m["role"], "content": content})
    return out


def classify_error(exc: BaseException) -> RetryDecision:
    """Transient (rate limit, server error, timeout, connection) or final."""
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError)):
        return RetryDecision(True, reason=type(exc).__name__)
    if isinstance(exc, openai.APIStatusError):
        if exc.status_code in _RETRY_STATUS:
            return RetryDecision(True, _retry_after(exc.response.headers), f"HTTP {exc.status_code}")
        return RetryDecision(False, reason=f"HTTP {exc.status_code}")
    return RetryDecision(False, reason=type(exc).__name__)


def _retry_after(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:  # an HTTP date; rare enough to fall back to backoff
        return None


class OpenAIBackend(Backend):
    """``openai/NAME`` against ``base_url``."""

    def __init__(self, name: str, base_url: str | None = None, api_key_env: str = "OPENAI_API_KEY",
                 concurrency: int = 16, timeout_s: float = 600.0, retry: RetryPolicy | None = None):
        import openai

        self.name = name
        self.spec = f"openai/{name}"
        self.base_url = base_url
        self._concurrency = concurrency
        self.retry = retry or RetryPolicy()
        # vLLM and friends accept any key; OpenAI itself needs the real one.
        key = os.environ.get(api_key_env) or "EMPTY"
        self._client = openai.AsyncOpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=timeout_s)
        self.retries = 0

    def fingerprint_config(self) -> dict[str, Any]:
        return {"spec": self.spec}

    @property
    def concurrency(self) -> int:
        return self._concurrency

    async def complete(self, messages: list[Message], settings: GenerationSettings) -> Completion:
        kwargs: dict[str, Any] = {"model": self.name, "messages": to_openai_messages(messages),
                                  "max_tokens": settings.max_tokens, "temperature": settings.temperature,
                                  "top_p": settings.top_p}
        if settings.seed is not None:
            kwargs["seed"] = settings.seed
        if settings.extra.get("extra_body"):
            # Server-specific fields (vLLM's top_k, repetition_penalty...) go at the top level of the
            # request, as the client's extra_body would put them: _post sends the body as is.
            kwargs.update(settings.extra["extra_body"])
        start = time.perf_counter()
        try:
            resp, retries = await with_retries(lambda: self._post(kwargs), classify_error, self.retry)
        except Exception as exc:  # noqa: BLE001 - reported on the sample
            raise BackendError(f"{self.spec}: {type(exc).__name__}: {exc}") from exc
        self.retries += retries
        return _completion(resp, time.perf_counter() - start)

    async def _post(self, body: dict[str, Any]) -> Any:
        # The client's generic `post` sends our body as is: `chat.completions.create`
        # first walks every field (the base64 images included) through its type
        # transformer, which costs milliseconds per request and starves the server.
        from openai.types.chat import ChatCompletion

        return await self._client.post("/chat/completions", cast_to=ChatCompletion, body=body)

    async def aclose(self) -> None:
        await self._client.close()


def _completion(resp: Any, latency: float) -> Completion:
    if not resp.choices:
        raise BackendError("the server returned no choices")
    choice = resp.choices[0]
    msg = choice.message
    # vLLM/SGLang put the thinking in `reasoning_content` (newer vLLM: `reasoning`).
    reasoning = getattr(msg, "reasoning_content", None) or getattr(msg, "reasoning", None)
    usage = resp.usage
    details = getattr(usage, "completion_tokens_details", None) if usage else None
    return Completion(
        content=msg.content or "",
        reasoning_content=reasoning if isinstance(reasoning, str) else None,
        finish_reason=choice.finish_reason,
        prompt_tokens=getattr(usage, "prompt_tokens", None),
        completion_tokens=getattr(usage, "completion_tokens", None),
        reasoning_tokens=getattr(details, "reasoning_tokens", None) if details else None,
        latency_s=latency,
    )
