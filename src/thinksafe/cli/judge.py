"""``thinksafe judge``: judge a finished run again, never calling the model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UserError


def judge_cmd(
    run_dir: Annotated[Path, typer.Argument(metavar="DIR", help="A run folder, or a preset folder of run folders.")],
    judge: Annotated[str, typer.Option(help="refusal | llm | llm:trace | llm:policy | llm:policy@N | guard | "
                                            "guard:prompt | guard:noimage | official | ensemble:J1,J2,... "
                                            "(see docs/judges.md).")],
    judge_model: Annotated[Optional[str], typer.Option(help="Judge model spec, e.g. openai/gpt-4o-mini.")] = None,
    judge_base_url: Annotated[Optional[list[str]], typer.Option(help="Judge server URL(s): repeat or comma-separate "
                                                                     "for several.")] = None,
    judge_api_key_env: Annotated[str, typer.Option(
        help="Environment variable with the judge's key.")] = "OPENAI_API_KEY",
    judge_concurrency: Annotated[Optional[int], typer.Option(help="Judge requests in flight.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Benchmark data folder, if it moved since the run.")] = None,
    quiet: Annotated[bool, typer.Option(help="No progress bar or tables.")] = False,
) -> None:
    """Judge the stored generations of DIR with another judge (no regeneration).

    Each judge's results stay readable in DIR/judges/<judge>-<fingerprint>/.
    """
    from rich.console import Console

    from ..rejudge import JudgeOptions
    from ..report.table import print_run

    console = Console(stderr=True)
    from .app import join_urls

    options = JudgeOptions(judge, judge_model, join_urls(judge_base_url, "--judge-base-url"), judge_api_key_env,
                           judge_concurrency)
    results = _run(run_dir, options, data, quiet, console)
    for r in results:
        if not quiet:
            print_run(r.metrics, r.folder)
        console.print(f"{r.folder}: {r.stats.judged} generations judged, {r.stats.judge_requests} new judge calls; "
                      f"per-judge results in {r.folder / 'judges'}", highlight=False)
        if r.stats.samples and not r.stats.judged:
            console.print(f"[yellow]warning:[/yellow] {r.folder}: no stored generation matched the benchmark's "
                          "samples (all generations failed, moved run folder or changed data?)", highlight=False)


def _run(run_dir: Path, options, data: Path | None, quiet: bool, console) -> list:
    """Run the re-judge, with a progress bar unless ``quiet``."""
    from ..rejudge import rejudge

    if quiet:
        return rejudge(run_dir, options, data)
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task(f"judging with {escape(options.judge)}", total=None)

        def advance(n: int, total: int | None) -> None:
            # The total is per benchmark; a preset's bar just counts on.
            progress.advance(task, n)

        try:
            return rejudge(run_dir, options, data, advance)
        except UserError:
            progress.remove_task(task)  # the error's line stands alone
            raise


def register(app: typer.Typer) -> None:
    """Add ``judge`` to ``app``."""
    app.command("judge")(judge_cmd)
