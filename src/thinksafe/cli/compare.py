"""``thinksafe compare`` and ``thinksafe judge-agreement``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def compare(
    run_dirs: Annotated[list[Path], typer.Argument(metavar="RUN_DIR",
                                                   help="Run or preset folders; the FIRST is the base.")],
    out: Annotated[Path, typer.Option(help="Folder for compare.json, compare.md (and tradeoff.png).")] = Path("."),
    resamples: Annotated[int, typer.Option(min=100, help="Paired bootstrap resamples.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    alpha: Annotated[float, typer.Option(min=0.0001, max=0.5, help="1 - alpha is the interval level.")] = 0.05,
) -> None:
    """Compare runs with the first one, paired by sample id (+ = better than the base).

    With capability benchmarks or over-refusal controls among them, also the safety / capability
    trade-off of each run: safety gain, over-refusal change, capability change.
    """
    from rich.console import Console

    from ..report.compare import compare_runs, print_compare, write_compare

    console = Console()
    result = compare_runs(run_dirs, n_resamples=resamples, seed=seed, alpha=alpha)
    print_compare(result, console)
    js, md = write_compare(result, out)
    console.print(f"wrote {js} and {md}")


def judge_agreement(
    run_dir: Annotated[Path, typer.Argument(metavar="DIR",
                                            help="A run folder, or a folder of run folders (one per judge).")],
    labels: Annotated[Path, typer.Option(help="LABELS.jsonl: {id, target, label} per line.")],
    seed: Annotated[int, typer.Option(help="Seed of the corrected-ASR bootstrap.")] = 0,
) -> None:
    """Agreement of the judges in RUN_DIR with human labels; writes RUN_DIR/agreement.json."""
    from rich.console import Console

    from ..metrics.agreement import agreement_report, print_agreement, write_agreement

    console = Console()
    report = agreement_report(run_dir, labels, seed=seed)
    print_agreement(report, console)
    console.print(f"wrote {write_agreement(report, run_dir)}")


def register(app: typer.Typer) -> None:
    """Add ``compare`` and ``judge-agreement`` to ``app``."""
    app.command("compare")(compare)
    app.command("judge-agreement")(judge_agreement)
