"""``thinksafe demo``: evaluate -> LoRA fine-tune -> re-evaluate a tiny random VLM, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer


def demo_cmd(
    out: Annotated[Path, typer.Option(help="Folder for the model, data, adapter, both runs and comparison.json.")],
    seed: Annotated[int, typer.Option(help="Seed of the tiny model's weights and of training.")] = 0,
    steps: Annotated[Optional[int], typer.Option(help="LoRA steps (default 250, tuned for 2 CPU cores).")] = None,
    lr: Annotated[Optional[float], typer.Option(help="LoRA learning rate (default 4e-3).")] = None,
) -> None:
    """Evaluate, LoRA-tune and re-evaluate a tiny random VLM offline, in under a minute on 2 cores.

    The stand-in learns to think, then refuse harmful requests and answer benign
    ones, on 24 probes it was not trained on. It is a random model reading the
    request from the text: the numbers show that the loop works, not any real
    model's safety.
    """
    from rich.console import Console

    from ..train.demo import print_comparison, run_demo
    from .baselines import offline

    offline()
    err = Console(stderr=True)
    result = run_demo(out, seed=seed, steps=steps, lr=lr, echo=lambda line: err.print(line, highlight=False))
    print_comparison(result, out, Console())


def register(app: typer.Typer) -> None:
    """Add ``thinksafe demo`` to the main app."""
    app.command("demo")(demo_cmd)
