"""The runs a report shows: run folders (or folders of them) with a label and a role.

A *run* is one model's results: a run folder (one benchmark) or a folder of run
folders, one per benchmark (a preset run, or ``OUT/<model>/`` of a study).
Reports read the files ``thinksafe eval`` / ``thinksafe report`` write in each
run folder: ``run.json``, ``metrics.json`` and ``samples.jsonl``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..metrics.agreement import find_run_dirs, load_jsonl, read_json

@dataclass(frozen=True)
class RunRef:
    """One model's results to show in a report.

    Attributes:
        dir: A run folder, or a folder whose subfolders are run folders (one per benchmark).
        label: The name shown in tables and plots (default: the folder's name).
        role: ``base``, ``reasoning``, ``tuned`` or any other word; colours the plots.
    """

    dir: Path
    label: str | None = None
    role: str | None = None


@dataclass
class BenchRun:
    """One run folder: one model on one benchmark."""

    dir: Path
    info: dict[str, Any]
    """``run.json`` (``{}`` when the folder has none)."""
    metrics: dict[str, Any]
    """``metrics.json``."""

    @property
    def family(self) -> str:
        from ..benchmarks import headline  # the benchmark's own family, for files that do not say

        return str(self.metrics.get("family") or self.info.get("family")
                   or headline(str(self.metrics.get("benchmark")))["family"])

    def rows(self) -> Iterator[dict[str, Any]]:
        """The records of ``samples.jsonl``, streamed.

        Raises:
            UserError: A line is not a JSON object (the message names file and line).
        """
        try:
            yield from load_jsonl(self.dir / "samples.jsonl")
        except ValueError as e:
            raise UserError(f"{e}; rewrite it with `thinksafe report {self.dir}`") from None


@dataclass
class Run:
    """A :class:`RunRef` read from disk."""

    ref: RunRef
    label: str
    benchmarks: dict[str, BenchRun] = field(default_factory=dict)

    @property
    def role(self) -> str | None:
        return self.ref.role

    @property
    def models(self) -> list[str]:
        return sorted({str(b.info.get("model") or b.metrics.get("model")) for b in self.benchmarks.values()})


def unique_names(paths: Sequence[Path]) -> list[str]:
    """Folder names, made unique (the full path, then a ``#i`` suffix, when names repeat)."""
    names = [p.name or str(p) for p in paths]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    if len(set(names)) < len(names):
        names = [f"{n}#{i}" for i, n in enumerate(names)]
    return names


def load_runs(refs: Sequence[RunRef]) -> list[Run]:
    """Read the run folders of each reference.

    Raises:
        UserError: No run folder at a path, a folder without ``metrics.json``,
            a benchmark twice in one run, or two runs with the same label.
    """
    if not refs:
        raise UserError("a report needs at least one run folder")
    defaults = unique_names([Path(r.dir) for r in refs])
    runs = [Run(ref, ref.label or name) for ref, name in zip(refs, defaults)]
    labels = [r.label for r in runs]
    if len(set(labels)) < len(labels):
        raise UserError(f"two runs have the same label ({', '.join(labels)}); give each its own label")
    for run in runs:
        try:
            dirs = find_run_dirs(Path(run.ref.dir))
        except FileNotFoundError as e:
            raise UserError(str(e)) from None
        for d in dirs:
            if not (d / "metrics.json").is_file():
                raise UserError(f"{d}: no metrics.json; write it with `thinksafe report {d}`")
            info, metrics = read_json(d / "run.json"), read_json(d / "metrics.json")
            name = str(info.get("benchmark") or metrics.get("benchmark") or d.name)
            if name in run.benchmarks:
                raise UserError(f"{run.ref.dir}: benchmark {name!r} appears twice "
                                f"({run.benchmarks[name].dir.name}, {d.name})")
            run.benchmarks[name] = BenchRun(d, info, metrics)
    return runs


def benchmark_names(runs: Sequence[Run]) -> list[str]:
    """Every benchmark of the runs, jailbreak family first, then by name."""
    family = {b: br.family for run in runs for b, br in run.benchmarks.items()}
    return sorted(family, key=lambda b: (family[b] != "jailbreak", family[b], b))
