"""Supervised fine-tuning with TRL's ``SFTTrainer`` and PEFT.

``train(cfg)`` does the whole run: read and check the data, load the model,
measure every row (images included) against ``max_length``, freeze the vision
side, wrap with LoRA/QLoRA (or train fully), train, and save the adapter (or
model) with its processor and a ``train_summary.json`` into ``cfg.out``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import require
from .collator import SFTCollator
from .config import TrainConfig, TrainConfigError, write_yaml
from .data import check_images, load_rows
from .models import check_device, count_parameters, freeze_for_full, load_model, lora_config, use_bf16
from .preflight import preflight

Printer = Callable[[str], None]


def _loss_callback(log_path: Path, echo: Printer | None):
    """A TrainerCallback appending every log line to ``train_log.jsonl``."""
    from transformers import TrainerCallback

    class LossLog(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ARG002 - HF signature
            if not logs or not state.is_world_process_zero:
                return
            entry = {"step": state.global_step, **{k: v for k, v in logs.items() if isinstance(v, (int, float))}}
            with log_path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(entry) + "\n")
            if echo is not None and "loss" in entry:
                echo(f"step {entry['step']}: loss {entry['loss']:.4f}")

    return LossLog()


def sft_args(cfg: TrainConfig, bf16: bool):
    """The ``SFTConfig`` for a run."""
    import torch
    from trl import SFTConfig

    cuda = torch.cuda.is_available()
    return SFTConfig(
        output_dir=cfg.out, per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate, num_train_epochs=cfg.epochs, max_steps=cfg.max_steps or -1,
        lr_scheduler_type=cfg.scheduler, warmup_steps=cfg.warmup_ratio, weight_decay=cfg.weight_decay,
        logging_steps=cfg.logging_steps, logging_first_step=True,
        save_strategy="steps" if cfg.save_steps else "no", save_steps=cfg.save_steps or 500,
        save_total_limit=cfg.save_total_limit, bf16=bf16, use_cpu=not cuda, dataloader_pin_memory=cuda,
        # transformers 5 renamed gradient_checkpointing; setting the new name also overrides TRL's default (on).
        activation_checkpointing=cfg.gradient_checkpointing,
        activation_checkpointing_kwargs={"use_reentrant": False} if cfg.gradient_checkpointing else None,
        # Our collator renders, tokenizes, masks and truncates; TRL must not touch the rows.
        max_length=None, remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True},
        report_to="none", seed=cfg.seed, disable_tqdm=True,
    )


def _quiet_console(trainer: Any) -> None:
    """Drop the trainer's own dict printing; our callback prints one line per log."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    for callback in (PrinterCallback, ProgressCallback):
        trainer.remove_callback(callback)


def resume_path(cfg: TrainConfig) -> str | None:
    """The checkpoint to resume from (``resume: latest`` finds the newest in ``out``).

    Raises:
        TrainConfigError: No checkpoint where one was asked for.
    """
    if not cfg.resume:
        return None
    if cfg.resume == "latest":
        from transformers.trainer_utils import get_last_checkpoint

        out = Path(cfg.out)
        last = get_last_checkpoint(str(out)) if out.is_dir() else None
        if last is None:
            raise TrainConfigError(f"--resume latest: no checkpoint-* folder in {out}")
        return last
    if not Path(cfg.resume).is_dir():
        raise TrainConfigError(f"--resume {cfg.resume}: not a checkpoint folder")
    return cfg.resume


def prepare_model(model: Any, cfg: TrainConfig):
    """Freeze for full fine-tuning, or return the LoRA config (QLoRA: after k-bit preparation)."""
    if cfg.method == "full":
        freeze_for_full(model, cfg)
        return model, None
    if cfg.method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    return model, lora_config(model, cfg)


def _losses(log_path: Path) -> list[dict[str, float]]:
    if not log_path.is_file():
        return []
    rows = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [{"step": r["step"], "loss": r["loss"]} for r in rows if "loss" in r]


def train(cfg: TrainConfig, echo: Printer | None = print, callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Run one SFT job and save its result into ``cfg.out``.

    Args:
        cfg: The resolved configuration.
        echo: Where progress lines go (None: silent).
        callbacks: Extra ``transformers.TrainerCallback`` objects (timers, probes).

    Returns:
        The ``train_summary.json`` body: losses, steps, time, throughput,
        parameter counts and the preflight report.

    Raises:
        UserError (TrainConfigError, DataError, ImageTokenError, a missing package): before any training step.
    """
    say = echo or (lambda _msg: None)
    require(("torch", "transformers", "peft", "trl", "datasets"), "thinksafe train")
    cfg.check()
    check_device(cfg)
    resume = resume_path(cfg)
    rows = load_rows(cfg.data, cfg.image_root)
    check_images(rows, cfg.data)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    write_yaml(cfg, out / "train_config.yaml")
    bf16 = use_bf16(cfg)
    model, processor = load_model(cfg, bf16)
    report = preflight(processor, rows, cfg.max_length)
    cut = f"; {len(report.truncated_rows)} answers cut at max_length {cfg.max_length}" if report.truncated_rows else ""
    say(f"data: {report.rows} rows, {report.images} images, longest {report.max_total_tokens} tokens{cut}")
    log_path = out / "train_log.jsonl"
    if not resume and log_path.exists():
        log_path.unlink()  # a fresh run starts a fresh log; a resumed one appends
    trainer = build_trainer(cfg, model, processor, rows, bf16, [_loss_callback(log_path, echo), *(callbacks or [])])
    params = count_parameters(trainer.model)
    say(f"{cfg.method}: {params['trainable']:,} of {params['total']:,} parameters train; bf16={bf16}")
    start = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=resume)
    summary = _summary(cfg, result, time.perf_counter() - start, params, report, bf16, _losses(log_path))
    _save(trainer, processor, out, summary)
    return summary


def build_trainer(cfg: TrainConfig, model: Any, processor: Any, rows: list[Any], bf16: bool, callbacks: list[Any]):
    """An ``SFTTrainer`` over the rows, with our collator and (for LoRA/QLoRA) the PEFT config."""
    from datasets import Dataset
    from trl import SFTTrainer

    model, peft_config = prepare_model(model, cfg)
    dataset = Dataset.from_list([r.to_record() for r in rows])
    trainer = SFTTrainer(model=model, args=sft_args(cfg, bf16), train_dataset=dataset, processing_class=processor,
                         data_collator=SFTCollator(processor, cfg.max_length, cfg.cache_images),
                         peft_config=peft_config, callbacks=callbacks)
    _quiet_console(trainer)
    return trainer


def _save(trainer: Any, processor: Any, out: Path, summary: dict[str, Any]) -> None:
    """Adapter (or model), processor and summary (the main process writes them)."""
    trainer.save_model(str(out))
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(out))
        (out / "train_summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")


def _summary(cfg: TrainConfig, result: Any, seconds: float, params: dict[str, int], report: Any, bf16: bool,
             losses: list[dict[str, float]]) -> dict[str, Any]:
    metrics = dict(result.metrics or {})
    base = cfg.model if cfg.model.startswith("hf/") else "hf/" + cfg.model
    hint = (f"thinksafe eval --model {base} --adapter {cfg.out} --benchmark BENCH --out RUN"
            if cfg.method != "full" else f"thinksafe eval --model hf/{cfg.out} --benchmark BENCH --out RUN")
    return {
        "method": cfg.method, "model": cfg.model, "data": cfg.data, "out": cfg.out, "bf16": bf16,
        "steps": result.global_step, "seconds": round(seconds, 2),
        "train_samples_per_second": metrics.get("train_samples_per_second"),
        "train_loss": metrics.get("train_loss"),
        "first_loss": losses[0]["loss"] if losses else None, "last_loss": losses[-1]["loss"] if losses else None,
        "losses": losses, "parameters": params, "data_check": report.to_dict(),
        "adapter": cfg.method != "full", "evaluate_with": hint,
    }
