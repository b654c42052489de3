"""Judge a finished run again with another judge, without regenerating.

``thinksafe judge DIR --judge SPEC`` rebuilds the run's :class:`EvalConfig`
from ``run.json``, swaps in the new judge and runs it with
``judge_only=True``: the stored generations are judged, the model is never
called. Judgments are stored per judge fingerprint, so several judges live
side by side in one store and re-running a judge does only missing work.

The top-level ``metrics.json``/``samples.jsonl``/``run.json`` then describe
the latest judge (as after any run); every judge the folder has seen also gets
``judges/<judge-name>-<fingerprint>/`` with its own ``metrics.json``,
``samples.jsonl`` and ``judge.json``, so no judge's numbers are lost.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .evaluate import EvalConfig, Evaluation, RunStats, iter_results
from .judges.extra import register_all
from .models.base import GenerationSettings
from .report.files import write_results
from .report.rerun import run_folders
from .runinfo import read_run_json
from .store import Store

JUDGES_DIR = "judges"


@dataclass
class JudgeOptions:
    """The judge fields of :class:`EvalConfig` that a re-judge replaces."""

    judge: str
    judge_model: str | None = None
    judge_base_url: str | None = None
    judge_api_key_env: str = "OPENAI_API_KEY"
    judge_concurrency: int | None = None


@dataclass
class RejudgeResult:
    """What re-judging one run folder did."""

    folder: Path
    metrics: dict[str, Any]
    stats: RunStats
    judge_dirs: list[Path] = field(default_factory=list)


def config_from_run(info: dict[str, Any], folder: Path, data: Path | None = None) -> EvalConfig:
    """The :class:`EvalConfig` saved in ``run.json``, pointed at ``folder``.

    Args:
        info: ``run.json`` as a dict.
        folder: The run folder as it is now (it may have been moved).
        data: Replaces the saved benchmark data folder (it may have moved too).
    """
    saved = dict(info["config"])
    names = {f.name for f in dataclasses.fields(EvalConfig)}
    values = {k: v for k, v in saved.items() if k in names}
    values["out"] = Path(folder)
    values["settings"] = GenerationSettings(**(saved.get("settings") or {}))
    if data is not None:
        values["data"] = Path(data)
    elif values.get("data"):
        values["data"] = Path(values["data"])
    return EvalConfig(**values)


def judge_dir_name(name: str, judge_key: str) -> str:
    """A folder name for a judge: its name made file-safe, then its fingerprint."""
    return f"{re.sub(r'[^A-Za-z0-9._-]+', '-', name).strip('-')}-{judge_key}"


def write_judge_results(folder: Path, store: Store, bench: Any, gen_key: str,
                        header: dict[str, Any]) -> list[Path]:
    """``judges/<name>-<fp>/`` results for every judge that judged this run's generations."""
    out: list[Path] = []
    for judge in store.judges():
        key = judge["judge_key"]

        def results(key: str = key):
            return iter_results(store, bench.name, gen_key, key)

        if not any(r.judgments for r in results()):
            continue  # registered for other generations (an earlier model setting)
        target = Path(folder) / JUDGES_DIR / judge_dir_name(judge["name"], key)
        target.mkdir(parents=True, exist_ok=True)
        write_results(target, bench, results, header={**header, "judge": judge["name"], "judge_fingerprint": key})
        (target / "judge.json").write_text(json.dumps(
            {"name": judge["name"], "fingerprint": key, "config": judge["config"]}, indent=2, default=str))
        out.append(target)
    return out


def rejudge_folder(folder: Path, options: JudgeOptions, data: Path | None = None,
                   on_progress: Callable[[int, int | None], None] | None = None) -> RejudgeResult:
    """Judge one run folder's stored generations with ``options.judge``.

    Raises:
        UserError: The rebuilt config does not find the run's generations
            (its generation fingerprint differs from ``run.json``'s).
    """
    register_all()
    info = read_run_json(folder)
    cfg = dataclasses.replace(config_from_run(info, folder, data), judge_only=True, **dataclasses.asdict(options))
    evaluation = Evaluation(cfg, on_progress)
    try:
        expected = info.get("generation_fingerprint")
        if expected and evaluation.gen_key != expected:
            raise UserError(f"{folder}: the saved config gives generation fingerprint {evaluation.gen_key}, "
                            f"run.json says {expected}; the stored generations cannot be found (was run.json "
                            "edited, or the model's adapter changed since the run?)")
        metrics = asyncio.run(evaluation.run())
        header = {k: metrics.get(k) for k in ("benchmark", "family", "subset", "model", "protocol")}
        dirs = write_judge_results(folder, evaluation.store, evaluation.bench, evaluation.gen_key, header)
    finally:
        evaluation.store.close()
    return RejudgeResult(Path(folder), metrics, evaluation.stats, dirs)


def rejudge(root: Path, options: JudgeOptions, data: Path | None = None,
            on_progress: Callable[[int, int | None], None] | None = None) -> list[RejudgeResult]:
    """Re-judge a run folder, or every benchmark subfolder of a preset run.

    Args:
        root: A run folder (with ``run.json``) or a preset folder of them.
        options: The judge to use.
        data: Replaces the saved benchmark data folder; for a preset, the
            folder holding one data folder per benchmark (as ``eval --data``).
        on_progress: Called with ``(1, total)`` per sample done.
    """
    folders = run_folders(root)
    preset = len(folders) > 1 or Path(root).resolve() != folders[0].resolve()
    results = []
    for folder in folders:
        folder_data = Path(data) / folder.name if (data is not None and preset) else data
        results.append(rejudge_folder(folder, options, folder_data, on_progress))
    return results
