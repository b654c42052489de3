"""Tiny, randomly initialised VLMs of every target architecture, built offline in about a second.

They are the stand-in models for tests and demos: no weights are downloaded,
the tokenizer is trained on the spot, and each folder is well under 1 MB.
Their outputs are meaningless (the weights are random); only their *plumbing*
is real: the model is the architecture's real transformers class,
``AutoModelForImageTextToText`` / ``AutoProcessor`` load it, and its chat
template renders conversations in the family's own format (see
:mod:`.templates`). ``llava`` (the default) also carries TRL's
``{% generation %}`` markers.

Architectures: ``llava``, ``qwen2_vl``, ``qwen2_5_vl``, ``qwen3_vl``, ``mllama``,
``llava_onevision``, ``glm4v`` (see :data:`ARCHES`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import require
from .archs import ARCHES, Arch
from .templates import CHATML_LLAVA as CHAT_TEMPLATE
from .tokenizer import THINK_TOKENS, VOCAB_SIZE

# The llava model: 56 px images, 14 px patches: (56/14)^2 = 16 patches (+1 CLS,
# dropped by the "default" feature strategy), so every image becomes 16 <image> tokens.
IMAGE_SIZE = 56
PATCH_SIZE = 14
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
DEFAULT_ARCH = "llava"

__all__ = ["ARCHES", "Arch", "CHAT_TEMPLATE", "DEFAULT_ARCH", "IMAGE_TOKENS", "THINK_TOKENS", "VOCAB_SIZE",
           "build_tiny_model", "build_tokenizer", "make_tiny_model"]


def arch(name: str) -> Arch:
    """The architecture called ``name``.

    Raises:
        ValueError: Unknown name (the known ones are listed).
    """
    if name not in ARCHES:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(ARCHES)}")
    return ARCHES[name]


def build_tokenizer():
    """The llava tiny model's tokenizer (ChatML specials, ``<image>``, ``<think>`` as normal tokens)."""
    return ARCHES["llava"].build()[1].tokenizer


def make_tiny_model(seed: int = 0, arch_name: str = DEFAULT_ARCH) -> tuple[Any, Any]:
    """Build a tiny random VLM in memory.

    Args:
        seed: Seed for the random weights; the same seed gives the same model.
        arch_name: One of :data:`ARCHES`.

    Returns:
        ``(model, processor)``: the architecture's model class in eval mode and its processor.
    """
    import torch
    from transformers import AutoModelForImageTextToText

    spec = arch(arch_name)
    config, processor = spec.build()
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config).eval()
    tok = processor.tokenizer
    stops = [tok.eos_token_id] + [tok.convert_tokens_to_ids(t) for t in spec.stop_tokens]
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
    model.generation_config.bos_token_id = tok.bos_token_id
    return model, processor


MODEL_CARD = """\
---
tags: [thinksafe, test-model, random-weights]
---
# thinksafe tiny random VLM ({arch})

**This model is randomly initialised. Its outputs are meaningless.** It was
built offline by `thinksafe tiny-model --arch {arch} --seed {seed}` as a test
and demo stand-in: it exercises the loading, chat-template, batching,
generation and fine-tuning code paths of thinksafe without downloading any
weights. Never report results obtained with it as model results.

- Architecture: `{model_class}` (the real transformers class, tiny config:
  2 text layers of width 64, a 2-layer vision tower), {params:,} parameters.
  It stands in for: {real_models}.
- Chat format: {chat_format} (template written by thinksafe in the family's format).
- Tokenizer: byte-level BPE ({vocab} tokens) trained on a few safety/refusal
  sentences; `<think>` / `</think>` are ordinary added tokens.
- Processor: `{processor}` with the PIL image processor{video_note}.
"""


def _add_video_processor(out: Path, config: dict[str, Any]) -> None:
    """Name the video processor in ``processor_config.json``, as real checkpoints do."""
    import json

    path = out / "processor_config.json"
    saved = json.loads(path.read_text(encoding="utf-8"))
    saved["video_processor"] = config
    path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def build_tiny_model(out: Path | str, seed: int = 0, arch_name: str = DEFAULT_ARCH) -> Path:
    """Build a tiny random VLM and save it, with a model card, to ``out``.

    Args:
        out: Folder to write (created if needed; existing files are overwritten).
        seed: Seed for the random weights; the same seed gives the same files.
        arch_name: One of :data:`ARCHES`.

    Returns:
        The folder, loadable offline with ``AutoModelForImageTextToText.from_pretrained``
        and ``AutoProcessor.from_pretrained`` (or
        :func:`thinksafe.models.processors.load_processor` without torchvision).
    """
    require(("torch", "transformers", "tokenizers"), "the tiny model")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec = arch(arch_name)
    model, processor = make_tiny_model(seed, arch_name)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    if spec.video_processor:
        _add_video_processor(out, spec.video_processor)
    video = type(processor).__qualname__.endswith("WithoutVideo")
    card = MODEL_CARD.format(
        arch=arch_name, seed=seed, model_class=spec.model_class, params=model.num_parameters(),
        real_models=spec.real_models, chat_format=spec.chat_format, vocab=len(processor.tokenizer),
        processor=type(processor).__name__,
        video_note=" and no video processor (images only; with torchvision installed, AutoProcessor adds "
                   "the default one)" if video else "")
    (out / "README.md").write_text(card, encoding="utf-8")
    return out
