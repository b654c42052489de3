"""``thinksafe train --export llamafactory``: the same run as a LLaMA-Factory config.

Writes into one folder:

* ``thinksafe_sft.json``: the data in ShareGPT form (``<image>`` placeholders,
  image paths relative to ``media_dir``);
* ``dataset_info.json``: the dataset entry (``formatting: sharegpt`` with the
  ``from``/``value``/``human``/``gpt`` tags);
* ``thinksafe_sft.yaml``: the training config (``stage: sft``, template from the
  model family, LoRA or full, frozen vision tower, ``cutoff_len``...).

Run it with ``llamafactory-cli train thinksafe_sft.yaml``. No torch needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import TrainConfig, TrainConfigError
from .data import load_rows, to_sharegpt
from .models import TEMPLATES, model_type

DATASET = "thinksafe_sft"
# Hub ids whose family can be told from the name (no network needed).
_NAME_HINTS = (("qwen2.5-vl", "qwen2_5_vl"), ("qwen2_5_vl", "qwen2_5_vl"), ("qwen2-vl", "qwen2_vl"),
               ("r1-onevision", "qwen2_5_vl"), ("llava-cot", "mllama"), ("llama-3.2v", "mllama"),
               ("llama-3.2-11b-vision", "mllama"), ("llama-3.2-90b-vision", "mllama"), ("llava", "llava"))


def guess_family(cfg: TrainConfig) -> str:
    """``cfg.family``, else the local config.json, else the Hub id's name, else AutoConfig.

    Raises:
        TrainConfigError: The family cannot be found; pass --family or --template.
    """
    if cfg.family:
        return cfg.family
    path = cfg.model_path
    if (Path(path) / "config.json").is_file():
        return model_type(path)
    lowered = path.lower()
    for hint, family in _NAME_HINTS:
        if hint in lowered:
            return family
    try:
        return model_type(path, cfg.trust_remote_code)
    except Exception as exc:  # noqa: BLE001 - offline, gated or unknown repos all end here
        raise TrainConfigError(f"cannot tell the model family of {path!r} ({type(exc).__name__}); "
                               "pass --family or --template") from exc


def template(cfg: TrainConfig) -> str:
    """The LLaMA-Factory template for the run's model."""
    if cfg.template:
        return cfg.template
    family = guess_family(cfg)
    if family not in TEMPLATES:
        raise TrainConfigError(f"no LLaMA-Factory template known for model_type {family!r}; pass --template "
                               f"(known: {', '.join(f'{k} -> {v}' for k, v in TEMPLATES.items())})")
    return TEMPLATES[family]


def dataset_info(has_system: bool) -> dict[str, Any]:
    """The ``dataset_info.json`` body for the exported data file."""
    columns = {"messages": "conversations", "images": "images"}
    if has_system:
        columns["system"] = "system"
    return {DATASET: {"file_name": f"{DATASET}.json", "formatting": "sharegpt", "columns": columns,
                      "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                               "assistant_tag": "gpt"}}}


def yaml_sections(cfg: TrainConfig, folder: Path, media_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """The config, grouped the way LLaMA-Factory's examples group it."""
    method: dict[str, Any] = {"stage": "sft", "do_train": True,
                              "finetuning_type": "full" if cfg.method == "full" else "lora"}
    if cfg.method != "full":
        method.update(lora_rank=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      lora_target="all" if cfg.lora_target == "all-linear" else cfg.lora_target)
    if cfg.method == "qlora":
        method.update(quantization_bit=4, quantization_method="bnb")
    method.update(freeze_vision_tower=cfg.freeze_vision_tower, freeze_multi_modal_projector=cfg.freeze_projector,
                  freeze_language_model=False)
    train: dict[str, Any] = {
        "per_device_train_batch_size": cfg.batch_size, "gradient_accumulation_steps": cfg.grad_accum,
        "learning_rate": cfg.learning_rate, "num_train_epochs": float(cfg.epochs),
        "lr_scheduler_type": cfg.scheduler, "warmup_ratio": cfg.warmup_ratio, "weight_decay": cfg.weight_decay,
        "bf16": cfg.bf16 is not False, "disable_gradient_checkpointing": not cfg.gradient_checkpointing,
        "ddp_timeout": 180000000, "seed": cfg.seed, "resume_from_checkpoint": cfg.resume}
    if cfg.max_steps:
        train["max_steps"] = cfg.max_steps
    if cfg.max_length is None:
        raise TrainConfigError("LLaMA-Factory always cuts rows at cutoff_len: pass --max-length N "
                               "(0 = no limit exists only for thinksafe's own trainer)")
    saving = {"save_steps": cfg.save_steps} if cfg.save_steps else {"save_strategy": "no"}
    return [
        ("model", {"model_name_or_path": cfg.model_path, "trust_remote_code": cfg.trust_remote_code}),
        ("method", method),
        ("dataset", {"dataset": DATASET, "dataset_dir": str(folder.resolve()), "media_dir": str(media_dir.resolve()),
                     "template": template(cfg), "cutoff_len": cfg.max_length, "overwrite_cache": True,
                     "preprocessing_num_workers": 16}),
        ("output", {"output_dir": str(Path(cfg.out).resolve() / "llamafactory-output"),
                    "logging_steps": cfg.logging_steps, **saving, "plot_loss": True,
                    "overwrite_output_dir": True, "save_only_model": False, "report_to": "none"}),
        ("train", train),
    ]


def render_yaml(sections: list[tuple[str, dict[str, Any]]]) -> str:
    import yaml

    parts = ["# LLaMA-Factory SFT config written by `thinksafe train --export llamafactory`.",
             "# Run: llamafactory-cli train <this file>   (multi-GPU: FORCE_TORCHRUN=1 llamafactory-cli train ...,",
             "# add `deepspeed: examples/deepspeed/ds_z3_config.json` from a LLaMA-Factory checkout for ZeRO-3)."]
    for title, body in sections:
        parts += ["", f"### {title}", yaml.safe_dump(body, sort_keys=False).rstrip()]
    return "\n".join(parts) + "\n"


def export_llamafactory(cfg: TrainConfig, folder: Path | str | None = None) -> dict[str, Path]:
    """Write the data, ``dataset_info.json`` and the YAML config for LLaMA-Factory.

    Args:
        cfg: The resolved configuration (data is read and checked).
        folder: Where to write (default ``OUT/llamafactory``).

    Returns:
        ``{"config", "dataset_info", "data"}`` paths.

    Raises:
        DataError: A bad data row (same checks as training, images excepted).
        TrainConfigError: Unknown model family and no template, or no ``max_length``.
    """
    folder = Path(folder) if folder else Path(cfg.out) / "llamafactory"
    media_dir = Path(cfg.image_root) if cfg.image_root else Path(cfg.data).resolve().parent
    rows = load_rows(cfg.data, media_dir)
    sections = yaml_sections(cfg, folder, media_dir)  # fails early on an unknown family
    records = [to_sharegpt(r, media_dir) for r in rows]
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"data": folder / f"{DATASET}.json", "dataset_info": folder / "dataset_info.json",
             "config": folder / f"{DATASET}.yaml"}
    paths["data"].write_text(json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8")
    info = dataset_info(any("system" in r for r in records))
    paths["dataset_info"].write_text(json.dumps(info, indent=2), encoding="utf-8")
    paths["config"].write_text(render_yaml(sections), encoding="utf-8")
    return paths
