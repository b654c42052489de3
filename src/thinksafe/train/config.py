"""Training configuration: one dataclass, filled from defaults, a YAML file and flags.

Precedence is defaults < ``--config FILE`` < flags given on the command line.
The YAML file uses the same keys as the dataclass (``lr``, ``epochs``,
``lora_r``...). Nothing here imports torch, so printing a launch command or
exporting a LLaMA-Factory config stays fast.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

METHODS = ("lora", "qlora", "full")


class TrainConfigError(UserError, ValueError):
    """A training option that cannot work (unknown key, bad value, wrong device)."""


@dataclass
class TrainConfig:
    """Everything one SFT run needs; saved as ``train_config.yaml`` in the output folder."""

    data: str = ""
    """A thinksafe export (ShareGPT JSON/JSONL or TRL ``messages`` JSONL) or the released TiS file."""
    model: str = ""
    """``hf/PATH_OR_HUB_ID`` (the ``hf/`` prefix is optional)."""
    out: str = ""
    image_root: str | None = None
    """Folder that relative image paths start from (default: the data file's folder)."""
    method: str = "lora"
    """``lora`` (default), ``qlora`` (4-bit base, CUDA only) or ``full``."""
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_target: str = "all-linear"
    """``all-linear`` or a comma-separated list of module names (``q_proj,v_proj``)."""
    modules_to_save: list[str] = field(default_factory=list)
    """Modules trained in full next to LoRA (``lm_head`` for random tiny models)."""
    freeze_vision_tower: bool = True
    freeze_projector: bool = True
    epochs: float = 1.0
    max_steps: int | None = None
    """Stop after this many optimizer steps (overrides ``epochs``)."""
    lr: float | None = None
    """Learning rate; default 1e-4 for LoRA/QLoRA, 1e-5 for full fine-tuning."""
    batch_size: int = 1
    grad_accum: int = 8
    max_length: int | None = 4096
    """Longest sequence in tokens; answers are cut at the end, image tokens never (refused).
    None (``0`` on the command line or in YAML): no limit, rows are never cut."""
    warmup_ratio: float = 0.05
    scheduler: str = "cosine"
    weight_decay: float = 0.0
    gradient_checkpointing: bool = False
    bf16: bool | None = None
    """None: bf16 when the GPU supports it, else fp32."""
    seed: int = 0
    logging_steps: int = 10
    save_steps: int | None = 500
    """Checkpoint every N steps (None, or ``0`` on the command line or in YAML: no intermediate checkpoints)."""
    save_total_limit: int | None = 2
    resume: str | None = None
    """``latest`` (the newest checkpoint in ``out``) or a checkpoint folder."""
    cache_images: int = 0
    """Decoded images kept in memory (worth it for small sets trained for many epochs)."""
    trust_remote_code: bool = False
    template: str | None = None
    """LLaMA-Factory template for ``--export llamafactory`` (default: the one fitting the model's chat template)."""
    family: str | None = None
    """Model type (``qwen2_vl``, ``qwen2_5_vl``, ``qwen3_vl``, ``mllama``, ``llava``, ``glm4v``...); default: config.json."""

    @property
    def model_path(self) -> str:
        """The model spec without its ``hf/`` prefix."""
        return self.model[3:] if self.model.startswith("hf/") else self.model

    @property
    def learning_rate(self) -> float:
        """``lr``, or the method's default."""
        if self.lr is not None:
            return self.lr
        return 1e-5 if self.method == "full" else 1e-4

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def check(self) -> None:
        """Reject values no run could use (before anything heavy is loaded).

        Raises:
            TrainConfigError: With a message naming the option.
        """
        if not self.data:
            raise TrainConfigError("--data is required")
        if not self.model:
            raise TrainConfigError("--model is required (hf/PATH_OR_HUB_ID)")
        if not self.out:
            raise TrainConfigError("--out is required")
        if self.model.startswith("openai/"):
            raise TrainConfigError("cannot fine-tune an openai/ model; pass hf/PATH_OR_HUB_ID")
        if self.method not in METHODS:
            raise TrainConfigError(f"--method must be one of {', '.join(METHODS)}, not {self.method!r}")
        for name in ("lora_r", "lora_alpha", "batch_size", "grad_accum", "logging_steps"):
            if getattr(self, name) < 1:
                raise TrainConfigError(f"{name} must be >= 1")
        if self.max_steps is not None and self.max_steps < 1:
            raise TrainConfigError("max_steps must be >= 1")
        if self.max_length is not None and self.max_length < 16:
            raise TrainConfigError("max_length must be >= 16 tokens")
        if not 0 <= self.lora_dropout < 1 or not 0 <= self.warmup_ratio < 1:
            raise TrainConfigError("lora_dropout and warmup_ratio must be in [0, 1)")
        if (self.lr is not None and self.lr <= 0) or self.epochs <= 0:
            raise TrainConfigError("lr and epochs must be > 0")


FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
_ZERO_IS_NONE = ("max_length", "save_steps")
"""Options where 0 means "none" (no limit, no checkpoints), in flags and YAML alike."""


def read_yaml(path: Path | str) -> dict[str, Any]:
    """Read a ``--config`` YAML file into a dict of known keys.

    Dashes in keys are accepted (``max-steps`` = ``max_steps``), like the flags.

    Raises:
        TrainConfigError: Missing file, not a mapping, or unknown keys (all listed).
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise TrainConfigError(f"{path}: config file not found")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise TrainConfigError(f"{path}: expected a mapping of option: value")
    values = {str(k).replace("-", "_"): v for k, v in raw.items()}
    unknown = sorted(set(values) - FIELDS)
    if unknown:
        raise TrainConfigError(f"{path}: unknown keys {', '.join(unknown)}; known: {', '.join(sorted(FIELDS))}")
    return values


def build_config(file: Path | str | None = None, **flags: Any) -> TrainConfig:
    """Defaults, then the YAML file, then every flag that is not None.

    Args:
        file: Optional YAML file with TrainConfig keys.
        **flags: Command-line values; ``None`` means "not given".

    Returns:
        The merged, checked configuration.
    """
    values: dict[str, Any] = read_yaml(file) if file else {}
    unknown = sorted(set(flags) - FIELDS)
    if unknown:
        raise TrainConfigError(f"unknown options {', '.join(unknown)}")
    values.update({k: v for k, v in flags.items() if v is not None})
    for key in _ZERO_IS_NONE:
        if values.get(key) == 0:
            values[key] = None
    for key in ("data", "out", "image_root"):
        if values.get(key) is not None:
            values[key] = str(values[key])
    if isinstance(values.get("modules_to_save"), str):
        values["modules_to_save"] = [m for m in values["modules_to_save"].split(",") if m]
    cfg = TrainConfig(**values)
    cfg.check()
    return cfg


def write_yaml(cfg: TrainConfig, path: Path | str) -> Path:
    """Save the resolved configuration (usable again with ``--config``)."""
    import yaml

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return path
