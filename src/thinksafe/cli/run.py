"""Running an evaluation from the CLI: progress bar, presets, clean errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import typer


def _progress_run(cfg, quiet: bool) -> dict[str, Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..evaluate import run_eval

    if quiet:
        return run_eval(cfg)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(f"{cfg.benchmark} x {cfg.model}", total=None)

        def advance(n: int, total: int | None) -> None:
            if total and progress.tasks[0].total is None:
                progress.update(task, total=total)
            progress.advance(task, n)

        return run_eval(cfg, on_progress=advance)


def run_with_progress(cfg, quiet: bool = False) -> None:
    from rich.console import Console

    from ..benchmarks import PRESETS
    from ..errors import UserError
    from ..report.table import print_run

    console = Console(stderr=True)
    names = PRESETS.get(cfg.benchmark, (cfg.benchmark,))
    summaries = {}
    for name in names:
        sub = cfg if len(names) == 1 else dataclasses.replace(
            cfg, benchmark=name, out=Path(cfg.out) / name, data=(Path(cfg.data) / name) if cfg.data else None,
            subset=None)
        try:
            metrics = _progress_run(sub, quiet)
        except (UserError, ValueError, FileNotFoundError) as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from exc
        print_run(metrics, sub.out)
        print_run_notes(Path(sub.out), console)
        summaries[name] = metrics
    if len(names) > 1:
        write_summary(Path(cfg.out), summaries)


def run_notes(stats: dict[str, Any]) -> list[str]:
    """Changed benchmark files, then one line per remote model: requests, retries, the
    in-flight limit, each server's share."""
    lines = []
    if stats.get("changed_files"):
        lines.append(f"note: benchmark files changed since this folder's last run: {', '.join(stats['changed_files'])}"
                     "; samples whose content changed were generated again")
    for role in ("model", "judge_model"):
        s = stats.get(role) or {}
        if not s.get("requests"):
            continue
        line = (f"{role.replace('_', ' ')}: {s['requests']} requests, {s['retries']} retries; in-flight limit "
                f"{s['limit_final']} at the end, lowest {s['limit_min']} (of {s['concurrency']}; "
                f"{s['overloads']} overload answers)")
        endpoints = s.get("endpoints") or []
        if len(endpoints) > 1 or any(e["removals"] for e in endpoints):
            line += "; servers: " + ", ".join(
                f"{e['url']} {e['requests']} sent" + (f", taken out {e['removals']}x" if e["removals"] else "")
                for e in endpoints)
        lines.append(line)
    return lines


def print_run_notes(out: Path, console) -> None:
    path = out / "stats.json"
    if path.is_file():
        for line in run_notes(json.loads(path.read_text())):
            console.print(line, highlight=False, soft_wrap=True)


def write_summary(out: Path, summaries: dict[str, dict[str, Any]]) -> None:
    """summary.json of a preset: each benchmark's headline numbers, by family."""
    by_family: dict[str, dict[str, Any]] = {}
    for name, m in summaries.items():
        answer = m.get("targets", {}).get("answer", {})
        by_family.setdefault(m.get("family", "?"), {})[name] = {
            "n": m.get("n"), "asr_answer": answer.get("asr"), "official": m.get("official")}
    (out / "summary.json").write_text(json.dumps({"by_family": by_family}, indent=2))
