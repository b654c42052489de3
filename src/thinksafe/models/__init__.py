"""Model backends, chosen by spec prefix: ``openai/NAME`` or ``hf/PATH``.

Backends import their heavy libraries only when built, so API-only commands
never import torch.
"""

from __future__ import annotations

from typing import Any

from ..errors import UsageError, require
from .base import Backend, BackendError, GenerationSettings, sample_messages, text_messages


def check_spec(spec: str) -> str:
    """The kind of a model spec (``openai`` or ``hf``), checked without building anything.

    Raises:
        UsageError: A malformed spec or an unknown kind.
        UserError: ``hf/`` without torch or transformers installed.
    """
    kind, _, name = spec.partition("/")
    if not name:
        raise UsageError(f"model spec {spec!r} must look like openai/NAME or hf/PATH")
    if kind not in ("openai", "hf"):
        raise UsageError(f"unknown model kind {kind!r} in {spec!r}: use openai/NAME or hf/PATH")
    if kind == "hf":
        require(("torch", "transformers"), "hf/ models")
    return kind


def get_backend(spec: str, **options: Any) -> Backend:
    """Build a backend from a spec.

    ``openai/NAME`` takes ``base_url``, ``api_key_env``, ``concurrency``, ``timeout_s``;
    ``hf/PATH`` takes ``adapter``, ``batch_size``, ``trust_remote_code``, ``device``, ``dtype``.
    Options that do not apply to the chosen backend are ignored.
    """
    kind = check_spec(spec)
    name = spec.partition("/")[2]
    if kind == "openai":
        from .openai_api import OpenAIBackend

        keys = ("base_url", "api_key_env", "concurrency", "timeout_s", "retry")
        return OpenAIBackend(name, **{k: v for k, v in options.items() if k in keys and v is not None})
    from .hf import HFBackend

    keys = ("adapter", "batch_size", "trust_remote_code", "device", "dtype")
    return HFBackend(name, **{k: v for k, v in options.items() if k in keys and v is not None})


__all__ = ["Backend", "BackendError", "GenerationSettings", "check_spec", "get_backend", "sample_messages",
           "text_messages"]
