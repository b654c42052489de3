"""Measure SFT training throughput: samples/s, tokens/s, step time, peak memory.

Meant for GPUs (pick the batch size, LoRA vs full, gradient checkpointing for a
real model before a long run); it also runs on a CPU with the tiny random model,
which is what the test does. The first ``--warmup`` steps (compilation, cache
allocation) are left out of the rates.

Usage:
  python benchmarks/train_throughput.py                                  # tiny model, built-in demo data
  python benchmarks/train_throughput.py --model hf/Qwen/Qwen2.5-VL-7B-Instruct \\
      --data tis/train.json --image-root tis --method lora --batch-size 2 --steps 30 --json tp.json
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path


def step_timer():
    """A TrainerCallback recording each optimizer step's wall time and the token count TRL logs."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.times: list[float] = []
            self.tokens: dict[int, float] = {}
            self._start = 0.0

        def on_step_begin(self, args, state, control, **kwargs):  # noqa: ARG002 - HF signature
            self._start = time.perf_counter()

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ARG002
            self.times.append(time.perf_counter() - self._start)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ARG002
            if logs and "num_tokens" in logs:
                self.tokens[state.global_step] = float(logs["num_tokens"])

    return StepTimer()


def default_inputs(work: Path) -> tuple[str, str]:
    """The tiny random model and the built-in demo data, made in ``work``."""
    from thinksafe.models.tiny import build_tiny_model
    from thinksafe.train.demo_data import write_demo_data

    model = build_tiny_model(work / "model")
    return f"hf/{model}", str(write_demo_data(work / "data"))


def peak_memory() -> dict[str, float | None]:
    """Peak GPU memory (GiB, this process) and peak resident memory (MiB)."""
    import torch

    gpu = torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None
    return {"peak_gpu_mem_gib": gpu, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def rates(timer, warmup: int, batch: int) -> dict[str, float | None]:
    """Samples/s and tokens/s over the steps after the warm-up."""
    timed = timer.times[warmup:] or timer.times
    seconds = sum(timed)
    steps = len(timed)
    first = timer.tokens.get(len(timer.times) - steps, 0.0)
    last = timer.tokens.get(len(timer.times))
    tokens = (last - first) if last is not None else None
    return {"timed_steps": steps, "step_time_s_median": statistics.median(timed) if timed else None,
            "samples_per_s": steps * batch / seconds if seconds else None,
            "tokens_per_s": tokens / seconds if tokens is not None and seconds else None}


def measure(args: argparse.Namespace, work: Path) -> dict:
    import torch

    from thinksafe.train.config import build_config
    from thinksafe.train.sft import train

    model, data = (args.model, args.data) if args.model else default_inputs(work)
    cfg = build_config(data=args.data or data, model=model, out=str(work / "out"), image_root=args.image_root,
                       method=args.method, max_steps=args.warmup + args.steps, batch_size=args.batch_size,
                       grad_accum=1, max_length=args.max_length or None, logging_steps=1, save_steps=None,
                       gradient_checkpointing=args.gradient_checkpointing, lr=1e-4 if args.model else 1e-2,
                       modules_to_save=[] if args.model else ["lm_head"])
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    timer = step_timer()
    start = time.perf_counter()
    summary = train(cfg, echo=None, callbacks=[timer])
    return {"model": cfg.model, "method": cfg.method, "device": "cuda" if torch.cuda.is_available() else "cpu",
            "bf16": summary["bf16"], "batch_size": cfg.batch_size, "max_length": cfg.max_length,
            "gradient_checkpointing": cfg.gradient_checkpointing, "warmup_steps": args.warmup,
            "steps": summary["steps"], "trainable_params": summary["parameters"]["trainable"],
            **rates(timer, args.warmup, cfg.batch_size), **peak_memory(),
            "wall_s_including_load": round(time.perf_counter() - start, 2)}


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", help="hf/PATH_OR_ID (default: the tiny random model)")
    p.add_argument("--data", help="training data (default: the built-in demo set)")
    p.add_argument("--image-root")
    p.add_argument("--method", default="lora", choices=("lora", "qlora", "full"))
    p.add_argument("--steps", type=int, default=20, help="timed steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=4096, help="0 = no limit")
    p.add_argument("--gradient-checkpointing", action="store_true")
    p.add_argument("--json", type=Path, help="also write the result here")
    args = p.parse_args(argv)
    if args.model and not args.data:
        p.error("--model needs --data")
    with tempfile.TemporaryDirectory() as tmp:
        result = measure(args, Path(tmp))
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
