"""Multi-GPU launch: the ``accelerate launch`` command for a training run.

The run's resolved options are written to ``OUT/train_config.yaml`` and every
process runs ``python -m thinksafe.train --config OUT/train_config.yaml``, so
the printed command is short, and re-running it trains the same thing.
The DeepSpeed / FSDP / DDP configs ship in ``thinksafe/resources/accelerate``.
"""

from __future__ import annotations

import shlex
import subprocess
from importlib import resources
from pathlib import Path

from .config import TrainConfig, TrainConfigError, write_yaml

LAUNCHERS = ("zero2", "zero3", "fsdp", "ddp")


def launcher_config(name: str) -> Path:
    """The path of a shipped accelerate config (``zero2``...) or of the user's own YAML.

    Raises:
        TrainConfigError: Neither a shipped name nor an existing file.
    """
    if name in LAUNCHERS:
        return Path(str(resources.files("thinksafe").joinpath(f"resources/accelerate/{name}.yaml")))
    path = Path(name)
    if not path.is_file():
        raise TrainConfigError(f"--launcher-config {name!r}: use one of {', '.join(LAUNCHERS)} or a YAML file path")
    return path


def accelerate_command(cfg: TrainConfig, launcher: str = "zero2", num_gpus: int = 1) -> tuple[list[str], Path]:
    """Write ``train_config.yaml`` and return ``(argv, config path)`` of the launch.

    Args:
        cfg: The resolved training configuration (its ``out`` receives the YAML).
        launcher: ``zero2``, ``zero3``, ``fsdp``, ``ddp`` or a path to an accelerate config.
        num_gpus: Processes to start on this node (one per GPU).
    """
    if num_gpus < 1:
        raise TrainConfigError("--num-gpus must be >= 1")
    if cfg.method == "qlora" and launcher in ("zero3", "fsdp"):
        # QLoRA is loaded as one whole 4-bit copy per GPU (a device_map), which
        # parameter sharding does not accept.
        raise TrainConfigError("QLoRA keeps a whole 4-bit model on every GPU, which ZeRO-3 and FSDP do not accept; "
                               "use --launcher-config zero2 or ddp")
    config_path = write_yaml(cfg, Path(cfg.out) / "train_config.yaml")
    argv = ["accelerate", "launch", "--config_file", str(launcher_config(launcher)),
            "--num_processes", str(num_gpus), "-m", "thinksafe.train", "--config", str(config_path)]
    return argv, config_path


def format_command(argv: list[str]) -> str:
    """The command as one shell-quoted line."""
    return shlex.join(argv)


def run_command(argv: list[str]) -> int:
    """Run the launch in the foreground; returns its exit code.

    Raises:
        TrainConfigError: ``accelerate`` is not installed.
    """
    try:
        return subprocess.run(argv, check=False).returncode
    except FileNotFoundError as exc:
        raise TrainConfigError("the accelerate command was not found: pip install 'thinksafe[hf]'") from exc
