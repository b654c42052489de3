"""Running an evaluation from the CLI: progress bar, presets."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

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

    names = PRESETS.get(cfg.benchmark, (cfg.benchmark,))
    summaries = {}
    for name in names:
        sub = cfg if len(names) == 1 else dataclasses.replace(
            cfg, benchmark=name, out=Path(cfg.out) / name, data=(Path(cfg.data) / name) if cfg.data else None,
            subset=None)
        metrics = _progress_run(sub, quiet)
        print_run(metrics, sub.out)
        summaries[name] = metrics
    if len(names) > 1:
        write_summary(Path(cfg.out), summaries)


def write_summary(out: Path, summaries: dict[str, dict[str, Any]]) -> None:
    """summary.json of a preset: each benchmark's headline numbers, by family."""
    by_family: dict[str, dict[str, Any]] = {}
    for name, m in summaries.items():
        answer = m.get("targets", {}).get("answer", {})
        by_family.setdefault(m.get("family", "?"), {})[name] = {
            "n": m.get("n"), "asr_answer": answer.get("asr"), "official": m.get("official"),
            "judge": m.get("judge"), "judge_spec": m.get("judge_spec"), "protocol": m.get("protocol")}
    (out / "summary.json").write_text(json.dumps({"by_family": by_family}, indent=2))
