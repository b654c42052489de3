"""Load a VLM for fine-tuning, decide what trains, and build the PEFT config.

Families named in the recipes: Qwen2-VL / Qwen2.5-VL (R1-Onevision), Mllama
(LLaVA-CoT), LLaVA. Anything else ``AutoModelForImageTextToText`` can load
works the same way (the LLaMA-Factory export picks its template from the chat template).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from .config import TrainConfig, TrainConfigError

# Module-name parts that mark the vision encoder and the vision->text projector.
VISION_PARTS = ("vision_tower", "vision_model", "visual", "vision_encoder", "image_encoder")
# Qwen3-VL's ``deepstack_merger_list`` feeds intermediate vision features to
# the text model; like LLaMA-Factory, it counts as vision tower (it is not the
# ``merger``). LLaVA-OneVision's ``image_newline`` is learned with the projector.
PROJECTOR_PARTS = ("multi_modal_projector", "mm_projector", "merger", "image_newline")


def model_type(path: str, trust_remote_code: bool = False) -> str:
    """The ``model_type`` of a local folder (read directly) or a Hub id (AutoConfig)."""
    config = Path(path) / "config.json"
    if config.is_file():
        return str(json.loads(config.read_text(encoding="utf-8")).get("model_type", ""))
    from transformers import AutoConfig

    return str(AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code).model_type)


def part_of(name: str) -> str:
    """``vision``, ``projector`` or ``language`` for a parameter or module name."""
    parts = name.split(".")
    if any(p in PROJECTOR_PARTS for p in parts):
        return "projector"
    if any(p in VISION_PARTS for p in parts):
        return "vision"
    return "language"


def frozen_parts(cfg: TrainConfig) -> set[str]:
    return {p for p, frozen in (("vision", cfg.freeze_vision_tower), ("projector", cfg.freeze_projector)) if frozen}


def use_bf16(cfg: TrainConfig) -> bool:
    """bf16 when asked, or by default when the GPU supports it."""
    import torch

    available = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if cfg.bf16 and not available:
        raise TrainConfigError("bf16 was requested but no GPU with bf16 support is available")
    return available if cfg.bf16 is None else bool(cfg.bf16)


def check_device(cfg: TrainConfig) -> None:
    """QLoRA needs CUDA and bitsandbytes; say so before loading anything.

    Raises:
        TrainConfigError: On a machine that cannot run the chosen method.
    """
    if cfg.method != "qlora":
        return
    import torch

    if not torch.cuda.is_available():
        raise TrainConfigError("QLoRA needs a CUDA GPU (bitsandbytes 4-bit weights); this machine has none. "
                               "Use --method lora (or full) on CPU.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError as exc:
        raise TrainConfigError("QLoRA needs bitsandbytes: pip install 'thinksafe[qlora]'") from exc


def load_model(cfg: TrainConfig, bf16: bool):
    """Model and processor, quantized to 4 bits for QLoRA."""
    import torch
    from transformers import AutoModelForImageTextToText

    from ..models.processors import load_processor

    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if bf16 else torch.float32,
                              "trust_remote_code": cfg.trust_remote_code}
    if cfg.method == "qlora":
        import os

        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if bf16 else torch.float16)
        # Each process of a multi-GPU launch keeps its whole quantized copy on its own GPU.
        kwargs["device_map"] = {"": int(os.environ.get("LOCAL_RANK", 0))}
    model = AutoModelForImageTextToText.from_pretrained(cfg.model_path, **kwargs)
    processor = load_processor(cfg.model_path, cfg.trust_remote_code)
    if processor.tokenizer.pad_token is None:
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return model, processor


def freeze_for_full(model: Any, cfg: TrainConfig) -> None:
    """Full fine-tuning: train everything except the frozen parts."""
    frozen = frozen_parts(cfg)
    for name, param in model.named_parameters():
        param.requires_grad = part_of(name) not in frozen


def exclude_pattern(model: Any, cfg: TrainConfig) -> str | None:
    """A regex (PEFT ``exclude_modules``) matching the linear layers of frozen parts.

    A whole frozen sub-module becomes one ``prefix\\..*`` branch; a sub-module
    that is only partly frozen (Qwen's ``visual`` holds the trainable ``merger``
    when only the tower is frozen) lists its frozen layers one by one.
    """
    frozen = frozen_parts(cfg)
    linear = [n for n, m in model.named_modules() if type(m).__name__.startswith("Linear")]
    by_root: dict[str, list[str]] = {}
    for name in linear:
        if part_of(name) in frozen:
            by_root.setdefault(_root(name), []).append(name)
    branches = []
    for root, names in by_root.items():
        under = [n for n in linear if n.startswith(root + ".")]
        branches += [re.escape(root) + r"\..*"] if len(under) == len(names) else [re.escape(n) for n in names]
    return "|".join(branches) or None


def _root(name: str) -> str:
    """The name up to its first vision or projector component."""
    parts = name.split(".")
    for k, p in enumerate(parts):
        if p in VISION_PARTS or p in PROJECTOR_PARTS:
            return ".".join(parts[: k + 1])
    return name


def lora_config(model: Any, cfg: TrainConfig):
    """The PEFT LoRA config: ``all-linear`` (or the listed modules) outside the frozen parts."""
    from peft import LoraConfig

    target: Any = cfg.lora_target
    if target != "all-linear":
        target = [t.strip() for t in target.split(",") if t.strip()]
    return LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=target, exclude_modules=exclude_pattern(model, cfg),
                      modules_to_save=list(cfg.modules_to_save) or None, task_type="CAUSAL_LM")


def count_parameters(model: Any) -> dict[str, int]:
    """Trainable and total parameters (after PEFT wrapping or freezing)."""
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"trainable": trainable, "total": total}
