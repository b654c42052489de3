"""Load a model's processor, also where torchvision is missing.

transformers 5 gives every processor that can take videos (Qwen2-VL,
Qwen2.5-VL, Qwen3-VL, GLM-4.1V, LLaVA-OneVision...) a video processor, and
video processors need torchvision. Image processors do not: each has a PIL
backend (``Qwen2VLImageProcessorPil``...) that ``AutoImageProcessor`` picks
when torchvision is absent. So on a machine without a working torchvision
(CPU-only torch, where PyPI's torchvision build fails to load) ``AutoProcessor``
cannot build these processors at all, although safety benchmarks only ever
send images.

:func:`load_processor` then builds the checkpoint's own processor class
without its video processor: the same tokenizer, image processor, chat
template and placeholder expansion, with ``videos=`` unavailable. A warning
says so once. Where torchvision works, nothing changes.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

log = logging.getLogger(__name__)

VIDEO = "video_processor"


def torchvision_available() -> bool:
    from transformers.utils import is_torchvision_available

    return bool(is_torchvision_available())


@functools.lru_cache(maxsize=None)
def without_video(processor_class: type) -> type:
    """A subclass of ``processor_class`` that takes no video processor.

    transformers finds a processor's parts from ``get_attributes()`` (the
    ``__init__`` parameters named after a modality); leaving ``video_processor``
    out of that list is all it takes: ``__init__`` then zips the remaining parts
    only, and ``__call__`` skips videos because the attribute is not set.
    """

    class ImageOnly(processor_class):  # type: ignore[misc, valid-type]
        @classmethod
        def get_attributes(cls):
            return [name for name in super().get_attributes() if name != VIDEO]

    # The real class name: saved folders then name the real processor, and
    # AutoProcessor (with torchvision) reloads them with their video processor.
    ImageOnly.__name__ = processor_class.__name__
    ImageOnly.__qualname__ = f"{processor_class.__name__}WithoutVideo"
    return ImageOnly


def needs_video(processor_class: type) -> bool:
    return VIDEO in processor_class.get_attributes()


def load_processor(path: str, trust_remote_code: bool = False) -> Any:
    """``AutoProcessor.from_pretrained(path)``, or the image-only processor when only torchvision is missing.

    Raises:
        Whatever ``AutoProcessor`` raises when the reason is not a missing torchvision.
    """
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (ValueError, ImportError, AttributeError, TypeError, OSError):
        if torchvision_available():
            raise
        processor_class = _processor_class(path, trust_remote_code)
        if processor_class is None or not needs_video(processor_class):
            raise
    log.warning("torchvision is not installed: %s loaded without its video processor "
                "(images work; videos need torchvision)", processor_class.__name__)
    return without_video(processor_class).from_pretrained(path, trust_remote_code=trust_remote_code)


def _processor_class(path: str, trust_remote_code: bool) -> type | None:
    """The processor class the checkpoint names (its processor config or its model type)."""
    import transformers
    from transformers import AutoConfig
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING_NAMES

    name = _saved_processor_class(path)
    if name is None:
        model_type = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code).model_type
        name = PROCESSOR_MAPPING_NAMES.get(model_type)
    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    return cls if isinstance(cls, type) else None


def _saved_processor_class(path: str) -> str | None:
    import json

    from transformers.utils import cached_file

    for filename in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        resolved = cached_file(path, filename, _raise_exceptions_for_missing_entries=False,
                               _raise_exceptions_for_connection_errors=False)
        if resolved:
            with open(resolved, encoding="utf-8") as f:
                name = json.load(f).get("processor_class")
            if name:
                return str(name)
    return None
