"""The one interface every model backend implements.

A request is a list of chat messages in a backend-neutral form::

    [{"role": "system", "content": "..."},
     {"role": "user", "content": [{"type": "image", "path": "/abs/a.png"},
                                  {"type": "text", "text": "..."}]}]

Backends turn it into their wire format (OpenAI ``image_url`` data URLs, an HF
processor's chat template) and return a :class:`~thinksafe.records.Completion`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from ..records import Completion, Sample

Message = dict[str, Any]


@dataclass
class GenerationSettings:
    """Decoding settings; part of the generation fingerprint."""

    max_tokens: int = 4096
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = 0
    system: str | None = None
    """Overrides the benchmark's system prompt when set."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Backend-specific settings that change outputs (think budget, adapter...)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class BackendError(RuntimeError):
    """A request failed for good (after retries); recorded on the sample."""


class Backend(ABC):
    """A model that answers chat requests."""

    spec: str
    """The user-facing model spec, e.g. ``openai/qwen`` or ``hf/path``."""

    def fingerprint_config(self) -> dict[str, Any]:
        """Everything about the backend that changes outputs (never secrets)."""
        return {"spec": self.spec}

    @property
    def concurrency(self) -> int:
        """How many requests the runner should keep in flight."""
        return 1

    def prepare(self, messages: list[Message], settings: GenerationSettings) -> list[Message]:
        """Get a request ready ahead of time, in the loader thread (so it must be
        thread-safe): e.g. read and encode its images. :meth:`complete` takes
        messages prepared or not."""
        return messages

    @abstractmethod
    async def complete(self, messages: list[Message], settings: GenerationSettings) -> Completion:
        """Answer one request; raise BackendError when it fails for good."""

    def stats(self) -> dict[str, Any]:
        """Request counters for the run's ``stats.json`` (remote backends)."""
        return {}

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections / memory."""


def sample_messages(sample: Sample, system: str | None = None) -> list[Message]:
    """Chat messages for a sample: optional system turn, then images and text."""
    return text_messages(sample.prompt, system if system is not None else sample.system, sample.images)


def text_messages(text: str, system: str | None = None, images: list[str] | None = None) -> list[Message]:
    """Messages for a single user turn (judges, captioners, teachers)."""
    messages: list[Message] = []
    if system:
        messages.append({"role": "system", "content": system})
    parts: list[dict[str, Any]] = [{"type": "image", "path": p} for p in images or []]
    parts.append({"type": "text", "text": text})
    messages.append({"role": "user", "content": parts})
    return messages
