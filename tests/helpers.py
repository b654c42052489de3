"""Helpers shared by the end-to-end tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from thinksafe.benchmarks.figstep import FIGSTEP_PROMPT
from thinksafe.cli.app import app

from scripted_server import file_key


def cli(*args: str, expect: int = 0):
    """Run ``thinksafe ARGS`` in-process; assert the exit code."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == expect, (result.exit_code, result.output, result.exception)
    return result


def figstep_tiny_keys(figstep_dir: Path) -> list[tuple[str, str]]:
    """(sample id, request key) for each FigStep-tiny row, in file order."""
    out = []
    with open(figstep_dir / "question" / "SafeBench-Tiny.csv", newline="") as f:
        for row in csv.DictReader(f):
            cat, task = row["category_id"], row["task_id"]
            image = figstep_dir / "images" / "SafeBench-Tiny" / f"query_ForbidQI_{cat}_{task}_6.png"
            out.append((f"{cat}-{task}", file_key(FIGSTEP_PROMPT, [image])))
    return out


def read_samples(run_dir: Path) -> dict[str, dict]:
    with open(run_dir / "samples.jsonl") as f:
        return {row["id"]: row for row in map(json.loads, f)}


def read_metrics(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())
