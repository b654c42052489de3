"""``thinksafe study CONFIG.yaml [--dry-run]``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer


def _table(title: str, header: list[str], rows: list[list[str]]) -> Any:
    from rich.table import Table

    t = Table(title=title)
    for col in header:
        t.add_column(col, overflow="fold")
    for row in rows:
        flag = row[-1]
        t.add_row(*row, style="bold red" if flag == "DEGRADED" else "green" if flag == "improved" else None)
    return t


def _print_plan(p: dict[str, Any], console: Any) -> None:
    console.print(_table("models", ["name", "role", "spec", "endpoint", "adapter", "registry", "compared with"],
                         [[m["name"], m["role"], m["spec"], m["endpoint"], m["adapter"] or "-", m["registry"] or "-",
                           ", ".join(m["compare_to"]) or "-"] for m in p["models"]]))
    console.print(_table("runs", ["model", "benchmark", "state", "detail", "folder"],
                         [[j["model"], j["benchmark"], j["state"], j["detail"], j["dir"]] for j in p["jobs"]]))
    todo = sum(j["state"] != "done" for j in p["jobs"])
    console.print(f"{len(p['jobs']) - todo} of {len(p['jobs'])} runs done; {todo} to run. "
                  f"Comparisons: {', '.join(f'{m} vs {r}' for r, m in p['comparisons']) or 'none'}.")
    for w in p["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)


def study(
    config: Annotated[Path, typer.Argument(metavar="CONFIG.yaml", help="The study config (see docs/study.md).")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and what is already done; run nothing.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bars.")] = False,
) -> None:
    """Run every model on every benchmark, then compare base / reasoning / tuned (study.json, study.md).

    Runs are resumable; models behind different servers run at the same time. A run that fails
    does not stop the others: they are listed at the end and the exit status is 1.
    """
    from rich.console import Console

    from ..study import load_study, plan, run_study
    from ..study.report import DIFF_HEADER, diff_rows, value_header, value_rows

    console = Console()
    cfg = load_study(config)
    if dry_run:
        _print_plan(plan(cfg), console)
        return
    result, files = run_study(cfg, quiet=quiet)
    console.print(_table("results (%)", value_header(result), value_rows(result)))
    console.print(_table("differences (+ = better)", DIFF_HEADER, diff_rows(result)))
    for w in result["warnings"]:
        console.print(f"[yellow]warning:[/yellow] {w}", highlight=False)
    console.print("wrote " + ", ".join(str(f) for f in files), highlight=False)
    if result["failures"]:
        console.print(f"[red]{len(result['failures'])} run(s) failed or are incomplete:[/red]")
        for f in result["failures"]:
            console.print(f"  {f['model']} x {f['benchmark']}: {f['status']}: {f['error']}", highlight=False,
                          markup=False)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("study")(study)
