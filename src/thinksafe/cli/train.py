"""``thinksafe train``: SFT (LoRA / QLoRA / full), multi-GPU launch, LLaMA-Factory export."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError

Opt = typer.Option


def train_cmd(
    data: Annotated[Optional[Path], Opt(help="ShareGPT/TRL JSON[L] or the TiS file; or a data-builder source "
                                            "KIND:PATH (mis:, vlguard:, spavl:, tis:...), its rows as released.")] = None,
    model: Annotated[Optional[str], Opt(help="hf/PATH_OR_HUB_ID of the base model.")] = None,
    out: Annotated[Optional[Path], Opt(help="Output folder (adapter or model, logs, checkpoints).")] = None,
    config: Annotated[Optional[Path], Opt(help="YAML file with the same keys as these flags (flags win).")] = None,
    image_root: Annotated[Optional[Path], Opt(help="Root of relative image paths (default: data folder).")] = None,
    method: Annotated[Optional[str], Opt(help="lora (default) | qlora (CUDA only) | full.")] = None,
    lora_r: Annotated[Optional[int], Opt(help="LoRA rank (default 8).")] = None,
    lora_alpha: Annotated[Optional[int], Opt(help="LoRA alpha (default 16).")] = None,
    lora_dropout: Annotated[Optional[float], Opt(help="LoRA dropout (default 0.05).")] = None,
    lora_target: Annotated[Optional[str], Opt(help="all-linear (default) or q_proj,v_proj,...")] = None,
    modules_to_save: Annotated[Optional[str], Opt(help="Comma-separated modules trained fully next to LoRA.")] = None,
    freeze_vision_tower: Annotated[Optional[bool], Opt("--freeze-vision-tower/--train-vision-tower",
                                                       help="Keep the vision encoder frozen (default).")] = None,
    freeze_projector: Annotated[Optional[bool], Opt("--freeze-projector/--train-projector",
                                                    help="Keep the vision-to-text projector frozen (default).")] = None,
    epochs: Annotated[Optional[float], Opt(help="Epochs (default 1).")] = None,
    max_steps: Annotated[Optional[int], Opt(help="Stop after N optimizer steps (overrides --epochs).")] = None,
    lr: Annotated[Optional[float], Opt(help="Learning rate (default 1e-4 LoRA, 1e-5 full).")] = None,
    batch_size: Annotated[Optional[int], Opt(help="Per-device batch size (default 1).")] = None,
    grad_accum: Annotated[Optional[int], Opt(help="Gradient accumulation steps (default 8).")] = None,
    max_length: Annotated[Optional[int], Opt(help="Max tokens per row; longer answers lose their end (default "
                                                    "4096; 0 = no limit).")] = None,
    warmup_ratio: Annotated[Optional[float], Opt(help="Warmup share of the steps (default 0.05).")] = None,
    scheduler: Annotated[Optional[str], Opt(help="LR scheduler (default cosine).")] = None,
    gradient_checkpointing: Annotated[Optional[bool], Opt("--gradient-checkpointing/--no-gradient-checkpointing",
                                                          help="Trade compute for memory.")] = None,
    bf16: Annotated[Optional[bool], Opt("--bf16/--no-bf16", help="Default: bf16 when the GPU supports it.")] = None,
    seed: Annotated[Optional[int], Opt(help="Seed (default 0).")] = None,
    logging_steps: Annotated[Optional[int], Opt(help="Log the loss every N steps (default 10).")] = None,
    save_steps: Annotated[Optional[int], Opt(help="Checkpoint every N steps (default 500, 0 = none).")] = None,
    resume: Annotated[Optional[str], Opt(help="'latest' (newest checkpoint in --out) or a checkpoint folder.")] = None,
    trust_remote_code: Annotated[Optional[bool], Opt("--trust-remote-code", help="Allow hub model code.")] = None,
    template: Annotated[Optional[str], Opt(help="LLaMA-Factory template (default: the one fitting the model's chat template).")] = None,
    family: Annotated[Optional[str], Opt(help="Model family if unreadable (qwen2_vl, mllama...).")] = None,
    launch: Annotated[Optional[str], Opt(help="'accelerate': print the multi-GPU command.")] = None,
    launcher_config: Annotated[str, Opt(help="zero2 | zero3 | fsdp | ddp | PATH to an accelerate YAML.")] = "zero2",
    num_gpus: Annotated[int, Opt(help="Processes (GPUs) for --launch.")] = 1,
    run: Annotated[bool, Opt("--run", help="With --launch: run the command too.")] = False,
    export: Annotated[Optional[str], Opt(help="'llamafactory': write its YAML + data.")] = None,
    export_dir: Annotated[Optional[Path], Opt(help="Folder for --export (default OUT/llamafactory).")] = None,
) -> None:
    """Fine-tune a VLM on safety-thinking data (loss on the assistant answer only)."""
    from ..train.config import build_config
    from ..train.data import released_source

    flags = dict(data=data, model=model, out=out, image_root=image_root, method=method, lora_r=lora_r,
                   lora_alpha=lora_alpha, lora_dropout=lora_dropout, lora_target=lora_target,
                   modules_to_save=modules_to_save, freeze_vision_tower=freeze_vision_tower,
                   freeze_projector=freeze_projector, epochs=epochs, max_steps=max_steps, lr=lr,
                   batch_size=batch_size, grad_accum=grad_accum, max_length=max_length, warmup_ratio=warmup_ratio,
                   scheduler=scheduler, gradient_checkpointing=gradient_checkpointing, bf16=bf16, seed=seed,
                   logging_steps=logging_steps, save_steps=save_steps, resume=resume,
                   trust_remote_code=trust_remote_code, template=template, family=family)
    cfg = build_config(config, **flags)
    if launch is not None and export is not None:
        raise UsageError("--launch and --export do not go together")
    cfg = released_source(cfg, lambda line: _console().print(line, highlight=False))
    if launch is not None:
        _launch(cfg, launch, launcher_config, num_gpus, run)
    elif export is not None:
        _export(cfg, export, export_dir)
    else:
        _train(cfg)


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _launch(cfg, launch: str, launcher: str, num_gpus: int, run: bool) -> None:
    from ..train.launch import accelerate_command, format_command, run_command

    if launch != "accelerate":
        raise UsageError(f"--launch {launch!r}: only 'accelerate' is supported")
    argv, config_path = accelerate_command(cfg, launcher, num_gpus)
    typer.echo(format_command(argv))
    _console().print(f"(options saved to {config_path}; every process reads them)", highlight=False)
    if run:
        raise typer.Exit(run_command(argv))


def _export(cfg, export: str, folder: Optional[Path]) -> None:
    from ..train.llamafactory import export_llamafactory

    if export != "llamafactory":
        raise UsageError(f"--export {export!r}: only 'llamafactory' is supported")
    paths = export_llamafactory(cfg, folder)
    for name, path in paths.items():
        _console().print(f"{name}: {path}", highlight=False)
    typer.echo(f"llamafactory-cli train {paths['config']}")


def _train(cfg) -> None:
    from ..train.sft import train

    console = _console()
    summary = train(cfg, echo=lambda line: console.print(line, highlight=False))
    console.print(f"[green]done[/green]: {summary['steps']} steps in {summary['seconds']:.0f}s, loss "
                  f"{summary['first_loss']} -> {summary['last_loss']}; saved to {cfg.out}", highlight=False)
    console.print(f"evaluate with: {summary['evaluate_with']}", highlight=False)


def register(app: typer.Typer) -> None:
    """Add ``thinksafe train`` to the main app."""
    app.command("train")(train_cmd)
