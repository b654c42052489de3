"""Does batching pay for `thinksafe eval --model hf/...`? Ratios per architecture, measured in one run.

For each tiny architecture (`thinksafe tiny-model --arch`), on the real FigStep
files (500 typographic images, 760x760 PNG):

* whole command: wall time of `thinksafe eval --benchmark figstep --model hf/TINY`
  (a fresh process: imports, loading, image decoding, templates, generation,
  judging, storage) at `--batch-size 1` and at `--batch-size B`; the ratio is
  the speed-up of the whole command (goal: >= 7 at B = 16);
* raw generate: the same prompts, already rendered and preprocessed, through
  `model.generate` alone at batch 1 and at batch B: the ceiling batching can reach.

Each batch-1 run is followed at once by its batch-B run, so both see about the
same load; the machine may be shared: only ratios mean anything, and the load
average is printed with each line. `--repeat N` repeats every measure and ends
with each ratio's median and range.
Torch runs one thread per process unless OMP_NUM_THREADS says otherwise: the
tiny models are dominated by per-operation overhead, and a second thread only
adds contention on a busy 2-core machine (the tests run the same way).

Usage: python benchmarks/hf_batching.py [--arch llava,qwen2_5_vl] [--batch-size 16]
       [--max-tokens 256] [--figstep ../shared/benchmarks/figstep]
       [--subset full] [--repeat 1] [--raw-n 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def whole_command(model: Path, figstep: Path, subset: str, batch: int, max_tokens: int, out: Path) -> float:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "thinksafe.cli", "eval", "--benchmark", "figstep", "--subset", subset,
                    "--data", str(figstep), "--model", f"hf/{model}", "--batch-size", str(batch), "--max-tokens",
                    str(max_tokens), "--device", "cpu", "--out", str(out), "--quiet"],
                   check=True, stdout=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def raw_generate(model_dir: Path, figstep: Path, batch: int, max_tokens: int, n: int) -> float:
    """Seconds for ``model.generate`` alone over n prompts (inputs prepared beforehand)."""
    import torch
    from PIL import Image
    from transformers import AutoModelForImageTextToText

    from thinksafe.benchmarks.figstep import FIGSTEP_PROMPT
    from thinksafe.models.processors import load_processor

    model = AutoModelForImageTextToText.from_pretrained(model_dir).eval()
    processor = load_processor(str(model_dir))
    processor.tokenizer.padding_side = "left"
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": FIGSTEP_PROMPT}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    paths = sorted((figstep / "images" / "SafeBench").glob("*.png"))[:n]
    batches = []
    for i in range(0, len(paths), batch):
        images = [[Image.open(p).convert("RGB")] for p in paths[i:i + batch]]
        batches.append(processor(text=[text] * len(images), images=images, padding=True, return_tensors="pt",
                                 add_special_tokens=False))
    start = time.perf_counter()
    with torch.inference_mode():
        for enc in batches:
            model.generate(**enc, max_new_tokens=max_tokens, do_sample=False)
    return time.perf_counter() - start


def _load() -> str:
    return f"load {os.getloadavg()[0]:.1f}"


def main() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from thinksafe.models.tiny import ARCHES, build_tiny_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default=",".join(ARCHES))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-tokens", type=int, default=256)
    p.add_argument("--figstep", type=Path, default=ROOT.parent / "shared/benchmarks/figstep")
    p.add_argument("--subset", default="full", help="FigStep subset: full (500 rows) or tiny (50)")
    p.add_argument("--raw-n", type=int, default=128, help="prompts for the raw generate measure (0: skip it)")
    p.add_argument("--repeat", type=int, default=1)
    a = p.parse_args()
    b = a.batch_size
    print(f"FigStep {a.subset}, --max-tokens {a.max_tokens}, batch 1 vs {b}, OMP_NUM_THREADS="
          f"{os.environ['OMP_NUM_THREADS']}, {os.cpu_count()} CPUs, {_load()}; the machine may be shared: "
          "read the ratios", flush=True)
    ratios: dict[tuple[str, str], list[float]] = defaultdict(list)
    with tempfile.TemporaryDirectory() as tmp:
        for arch in a.arch.split(","):
            model = build_tiny_model(Path(tmp) / arch, arch_name=arch)
            for rep in range(a.repeat):
                runs = [whole_command(model, a.figstep, a.subset, size, a.max_tokens, Path(tmp) / f"{arch}-{rep}-{size}")
                        for size in (1, b)]
                ratios[arch, "whole command"].append(runs[0] / runs[1])
                print(f"{arch:16s} whole command                {runs[0]:6.1f}s -> {runs[1]:5.1f}s  "
                      f"x{runs[0] / runs[1]:4.1f}   ({_load()})", flush=True)
                if a.raw_n:
                    raw = [raw_generate(model, a.figstep, size, a.max_tokens, a.raw_n) for size in (1, b)]
                    ratios[arch, "raw generate"].append(raw[0] / raw[1])
                    print(f"{arch:16s} raw generate ({a.raw_n} prompts)   {raw[0]:6.1f}s -> {raw[1]:5.1f}s  "
                          f"x{raw[0] / raw[1]:4.1f}   ({_load()})", flush=True)
    if a.repeat > 1:
        print(f"\nmedian [min-max] of {a.repeat} runs, batch {b} vs 1:")
        for (arch, what), values in ratios.items():
            print(f"{arch:16s} {what:28s} x{statistics.median(values):4.1f} [{min(values):.1f}-{max(values):.1f}]")


if __name__ == "__main__":
    main()
