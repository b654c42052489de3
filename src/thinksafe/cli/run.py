"""Running an evaluation from the CLI: progress bar, presets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import typer

from ..errors import UserError


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

        try:
            return run_eval(cfg, on_progress=advance)
        except UserError:
            progress.remove_task(task)  # the error's line stands alone
            raise


def run_with_progress(cfg, quiet: bool = False) -> None:
    from ..benchmarks import PRESETS
    from ..report.table import print_run

    names = PRESETS.get(cfg.benchmark)
    if names:
        run_preset(cfg, names, quiet)
        return
    metrics = _progress_run(cfg, quiet)
    print_run(metrics, cfg.out)
    print_run_notes(Path(cfg.out))


def run_preset(cfg, names: tuple[str, ...], quiet: bool) -> None:
    """Every benchmark of a preset into ``OUT/<benchmark>``. One that fails (data
    missing, server down) does not stop the others: all failures are listed at
    the end, in ``summary.json``, and the exit status is 1."""
    from rich.console import Console

    from ..report.table import print_run
    from ..study.runner import Job, run_jobs

    jobs = [Job("", name, dataclasses.replace(cfg, benchmark=name, out=Path(cfg.out) / name, subset=None,
                                              data=(Path(cfg.data) / name) if cfg.data else None))
            for name in names]
    outcomes = run_jobs(jobs, quiet=quiet, skip_done=False)
    summaries = {o.job.benchmark: o.metrics for o in outcomes if o.metrics is not None}
    for o in outcomes:
        if o.metrics is not None:
            print_run(o.metrics, o.job.cfg.out)
            print_run_notes(Path(o.job.cfg.out))
    failures = {o.job.benchmark: f"{o.status}: {o.error}" for o in outcomes if o.status != "done"}
    write_summary(Path(cfg.out), summaries, failures)
    if failures:
        console = Console(stderr=True)
        console.print(f"[red]{len(failures)} of {len(names)} benchmarks failed or are incomplete:[/red]")
        for name, why in failures.items():
            console.print(f"  {name}: {why}", markup=False, highlight=False)
        raise typer.Exit(1)


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


def print_run_notes(out: Path, console=None) -> None:
    from rich.console import Console

    console = console or Console(stderr=True)
    path = out / "stats.json"
    if path.is_file():
        for line in run_notes(json.loads(path.read_text())):
            console.print(line, highlight=False, soft_wrap=True)


def write_summary(out: Path, summaries: dict[str, dict[str, Any]], failures: dict[str, str] | None = None) -> None:
    """summary.json of a preset: each benchmark's headline numbers, by family, and what failed."""
    by_family: dict[str, dict[str, Any]] = {}
    for name, m in summaries.items():
        answer = m.get("targets", {}).get("answer", {})
        by_family.setdefault(m.get("family", "?"), {})[name] = {
            "n": m.get("n"), "asr_answer": answer.get("asr"), "official": m.get("official"),
            "judge": m.get("judge"), "judge_spec": m.get("judge_spec"), "protocol": m.get("protocol")}
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps({"by_family": by_family, "failed": failures or {}}, indent=2))
