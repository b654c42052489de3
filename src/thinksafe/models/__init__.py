"""Model backends, chosen by spec prefix: ``openai/NAME`` or ``hf/PATH``.

Backends import their heavy libraries only when built, so API-only commands
never import torch.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError, require
from .base import Backend, BackendError, GenerationSettings, sample_messages, text_messages


def get_backend(spec: str, **options: Any) -> Backend:
    """Build a backend from a spec.

    ``openai/NAME`` takes ``base_url``, ``api_key_env``, ``concurrency``, ``timeout_s``;
    ``hf/PATH`` takes ``adapter``, ``batch_size``, ``trust_remote_code``, ``device``, ``dtype``.
    Options that do not apply to the chosen backend are ignored.
    """
    kind, _, name = spec.partition("/")
    if not name:
        raise UsageError(f"model spec {spec!r} must look like openai/NAME or hf/PATH")
    if kind == "openai":
        from .openai_api import OpenAIBackend

        keys = ("base_url", "api_key_env", "concurrency", "timeout_s", "retry")
        return OpenAIBackend(name, **{k: v for k, v in options.items() if k in keys and v is not None})
    if kind == "hf":
        require(("torch", "transformers"), "hf/ models")
        from .hf import HFBackend

        keys = ("adapter", "batch_size", "trust_remote_code", "device", "dtype")
        return HFBackend(name, **{k: v for k, v in options.items() if k in keys and v is not None})
    raise UsageError(f"unknown model kind {kind!r} in {spec!r}: use openai/NAME or hf/PATH")


__all__ = ["Backend", "BackendError", "GenerationSettings", "get_backend", "sample_messages", "text_messages"]
