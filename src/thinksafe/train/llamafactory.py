"""``thinksafe train --export llamafactory``: the same run as a LLaMA-Factory config.

Writes into one folder:

* ``thinksafe_sft.json``: the data in ShareGPT form (``<image>`` placeholders,
  image paths relative to ``media_dir``);
* ``dataset_info.json``: the dataset entry (``formatting: sharegpt`` with the
  ``from``/``value``/``human``/``gpt`` tags);
* ``thinksafe_sft.yaml``: the training config (``stage: sft``, the template that
  fits the model's own chat format, LoRA or full, ``additional_target`` for
  ``--modules-to-save``, frozen vision tower, ``cutoff_len``, ``bf16`` by the
  same rule as ``thinksafe train``, ``save_strategy: "no"`` for ``--save-steps 0``),
  with comments saying why the template and bf16 were chosen.

Run it with ``llamafactory-cli train thinksafe_sft.yaml``. No torch needed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .config import TrainConfig, TrainConfigError
from .data import load_rows, to_sharegpt
from .lf_templates import LF_TEMPLATES, chat_format, matching, read_chat_template
from .models import model_type

DATASET = "thinksafe_sft"
# Hub ids whose family can be told from the name when neither the chat template
# nor config.json can be read (offline). Only families with one chat format:
# LLaVA checkpoints speak Vicuna or ChatML, so "llava" in a name decides nothing.
_NAME_HINTS = (("qwen2.5-vl", "qwen2_5_vl"), ("qwen2_5_vl", "qwen2_5_vl"), ("qwen2-vl", "qwen2_vl"),
               ("r1-onevision", "qwen2_5_vl"), ("llava-cot", "mllama"), ("llama-3.2v", "mllama"),
               ("llama-3.2-11b-vision", "mllama"), ("llama-3.2-90b-vision", "mllama"), ("glm-4.1v", "glm4v"))
_FAMILY_TEMPLATE = {"qwen2_vl": "qwen2_vl", "qwen2_5_vl": "qwen2_vl", "mllama": "mllama", "glm4v": "glm4v"}


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


def choose_template(cfg: TrainConfig) -> tuple[str, str]:
    """``(template, why)``: the LLaMA-Factory template for the run's model and how it was chosen.

    ``--template`` wins; otherwise the model's own chat template decides (with
    its model type), see :mod:`.lf_templates`.

    Raises:
        TrainConfigError: No LLaMA-Factory template fits the model's chat format.
    """
    if cfg.template:
        return cfg.template, "given with --template"
    family = guess_family(cfg)
    chat_template = read_chat_template(cfg.model_path)
    if chat_template is None:
        if family in _FAMILY_TEMPLATE:
            return _FAMILY_TEMPLATE[family], (f"from the model family {family} (its chat template could not be "
                                              "read here; that family has one chat format)")
        raise TrainConfigError(f"cannot read the chat template of {cfg.model_path!r} to choose a LLaMA-Factory "
                               "template; pass --template NAME")
    found = chat_format(chat_template)
    fits = matching(found, family)
    if len(fits) == 1:
        return fits[0].name, f"from the model's chat template ({found.describe()}) and model_type {family}"
    same_format = [t for t in LF_TEMPLATES if t.format == found.format and t.image == found.image]
    near = "; ".join(f"{t.name} (for {', '.join(t.model_types)})" for t in same_format) or "none"
    raise TrainConfigError(
        f"no LLaMA-Factory 0.9.5 template fits {cfg.model_path}: its chat template is {found.describe()} and its "
        f"model_type is {family}. Templates with that format: {near}. Training it with another format would teach "
        "it prompts it never sees; register a matching template in LLaMA-Factory and pass --template NAME, "
        "or train with `thinksafe train`, which uses the model's own template")


def template(cfg: TrainConfig) -> str:
    """The LLaMA-Factory template for the run's model."""
    return choose_template(cfg)[0]


def bf16_decision(cfg: TrainConfig) -> tuple[bool, str]:
    """``(bf16, why)`` by ``thinksafe train``'s rule: as asked, else when this machine's GPU supports it.

    Decided without torch (the export stays light): a GPU supports bf16 from
    compute capability 8.0 (Ampere) on, as ``nvidia-smi`` reports it.
    """
    if cfg.bf16 is not None:
        return bool(cfg.bf16), f"{'--bf16' if cfg.bf16 else '--no-bf16'} was given"
    capability = _gpu_compute_capability()
    if capability is None:
        return False, ("no CUDA GPU on the exporting machine, so fp32 (the rule of `thinksafe train`); "
                       "export with --bf16 for a GPU machine that supports it (compute capability >= 8.0)")
    if capability >= 8.0:
        return True, f"the exporting machine's GPU supports bf16 (compute capability {capability})"
    return False, f"the exporting machine's GPU has compute capability {capability} < 8.0: no bf16, so fp32"


def _gpu_compute_capability() -> float | None:
    """The lowest compute capability among this machine's NVIDIA GPUs, or None."""
    import shutil
    import subprocess

    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=compute_cap", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=20, check=True).stdout
        caps = [float(line) for line in out.split() if line.strip()]
    except (OSError, subprocess.SubprocessError, ValueError):
        return None
    return min(caps) if caps else None


def dataset_info(has_system: bool) -> dict[str, Any]:
    """The ``dataset_info.json`` body for the exported data file."""
    columns = {"messages": "conversations", "images": "images"}
    if has_system:
        columns["system"] = "system"
    return {DATASET: {"file_name": f"{DATASET}.json", "formatting": "sharegpt", "columns": columns,
                      "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human",
                               "assistant_tag": "gpt"}}}


def yaml_sections(cfg: TrainConfig, folder: Path, media_dir: Path) -> tuple[list[str], list[tuple[str, dict[str, Any]]]]:
    """``(comments, sections)``: why key values were chosen, and the config grouped as LLaMA-Factory's examples."""
    name, template_why = choose_template(cfg)
    bf16, bf16_why = bf16_decision(cfg)
    comments = [f"template: {name}: {template_why}.", f"bf16: {str(bf16).lower()}: {bf16_why}."]
    method: dict[str, Any] = {"stage": "sft", "do_train": True,
                              "finetuning_type": "full" if cfg.method == "full" else "lora"}
    if cfg.method != "full":
        method.update(lora_rank=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      lora_target="all" if cfg.lora_target == "all-linear" else cfg.lora_target)
        if cfg.modules_to_save:
            method["additional_target"] = ",".join(cfg.modules_to_save)
    if cfg.method == "qlora":
        method.update(quantization_bit=4, quantization_method="bnb")
    method.update(freeze_vision_tower=cfg.freeze_vision_tower, freeze_multi_modal_projector=cfg.freeze_projector,
                  freeze_language_model=False)
    train: dict[str, Any] = {
        "per_device_train_batch_size": cfg.batch_size, "gradient_accumulation_steps": cfg.grad_accum,
        "learning_rate": cfg.learning_rate, "num_train_epochs": float(cfg.epochs),
        "lr_scheduler_type": cfg.scheduler, "warmup_ratio": cfg.warmup_ratio, "weight_decay": cfg.weight_decay,
        "bf16": bf16, "disable_gradient_checkpointing": not cfg.gradient_checkpointing,
        "ddp_timeout": 180000000, "seed": cfg.seed, "resume_from_checkpoint": cfg.resume}
    if cfg.max_steps:
        train["max_steps"] = cfg.max_steps
    if cfg.max_length is None:
        raise TrainConfigError("LLaMA-Factory always cuts rows at cutoff_len: pass --max-length N "
                               "(0 = no limit exists only for thinksafe's own trainer)")
    output: dict[str, Any] = {"output_dir": str(Path(cfg.out).resolve() / "llamafactory-output"),
                              "logging_steps": cfg.logging_steps}
    if cfg.save_steps:
        output.update(save_steps=cfg.save_steps, save_total_limit=cfg.save_total_limit)
    else:  # --save-steps 0: no intermediate checkpoints (the final model is still saved)
        output["save_strategy"] = "no"
    output.update(plot_loss=True, overwrite_output_dir=True, save_only_model=False, report_to="none")
    sections = [
        ("model", {"model_name_or_path": cfg.model_path, "trust_remote_code": cfg.trust_remote_code}),
        ("method", method),
        ("dataset", {"dataset": DATASET, "dataset_dir": str(folder.resolve()), "media_dir": str(media_dir.resolve()),
                     "template": name, "cutoff_len": cfg.max_length, "overwrite_cache": True,
                     "preprocessing_num_workers": 16}),
        ("output", output),
        ("train", train),
    ]
    return comments, sections


def render_yaml(comments: list[str], sections: list[tuple[str, dict[str, Any]]]) -> str:
    import yaml

    parts = ["# LLaMA-Factory SFT config written by `thinksafe train --export llamafactory`.",
             "# Run: llamafactory-cli train <this file>   (multi-GPU: FORCE_TORCHRUN=1 llamafactory-cli train ...,",
             "# add `deepspeed: examples/deepspeed/ds_z3_config.json` from a LLaMA-Factory checkout for ZeRO-3).",
             *(f"# {line}" for line in comments)]
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
    comments, sections = yaml_sections(cfg, folder, media_dir)  # fails early when no template fits
    records = [to_sharegpt(r, media_dir) for r in rows]
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"data": folder / f"{DATASET}.json", "dataset_info": folder / "dataset_info.json",
             "config": folder / f"{DATASET}.yaml"}
    paths["data"].write_text(json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8")
    info = dataset_info(any("system" in r for r in records))
    paths["dataset_info"].write_text(json.dumps(info, indent=2), encoding="utf-8")
    paths["config"].write_text(render_yaml(comments, sections), encoding="utf-8")
    return paths
