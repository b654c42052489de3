"""What ``thinksafe report DIR…`` was given: run folders, a compare folder or a study folder.

* run folders (or preset folders of them): one run each, the first is the base;
  with several, the comparison is computed as ``thinksafe compare`` would;
* a compare folder (``compare.json`` from ``thinksafe compare``): its runs and its comparison;
* a study folder (``study.json`` from ``thinksafe study``): one run per model of
  its ``models`` list (``{name, dir, role, …}``; bases first, models with no
  results left out), else each subfolder holding run folders; its comparison when
  ``study.json`` holds one in the ``compare.json`` shape (at the top or under
  ``comparison``), else one computed from the runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..metrics.agreement import find_run_dirs, read_json
from .runs import RunRef


@dataclass
class ReportInputs:
    runs: list[RunRef]
    default_out: Path
    comparison: dict[str, Any] | None = None
    """Read from a file; None: computed from the runs when there are several."""
    run_folders: bool = False
    """The runs were given as run folders (``thinksafe report`` rewrites their files from the store first)."""
    notes: list[str] = field(default_factory=list)

    def resolve_comparison(self) -> dict[str, Any] | None:
        """The comparison to show: the file's, else ``compare_runs`` on several runs (a note when impossible)."""
        if self.comparison is not None or len(self.runs) < 2:
            return self.comparison
        from .compare import CompareError, compare_runs

        try:
            return compare_runs([r.dir for r in self.runs])
        except CompareError as e:
            self.notes.append(f"no paired comparison: {e}")
            return None


def _kind(path: Path) -> str | None:
    """``run`` (a run folder or a folder of them), ``compare``, ``study``, or None."""
    if (path / "samples.jsonl").is_file() or (path / "run.json").is_file():
        return "run"
    if (path / "compare.json").is_file():
        return "compare"
    if (path / "study.json").is_file():
        return "study"
    try:
        find_run_dirs(path)
    except FileNotFoundError:
        return None
    return "run"


def report_inputs(paths: Sequence[Path]) -> ReportInputs:
    """Classify the command's folders.

    Raises:
        UserError: A path that is not a run, compare or study folder, or a
            compare or study folder given with others.
    """
    paths = [Path(p) for p in paths]
    kinds = [_kind(p) if p.is_dir() else None for p in paths]
    for p, kind in zip(paths, kinds):
        if kind is None:
            raise UserError(f"{p}: not a run folder (no samples.jsonl here or in its subfolders), "
                            "nor a compare folder (compare.json) or a study folder (study.json)")
        if kind != "run" and len(paths) > 1:
            raise UserError(f"{p}: a {kind} folder makes one report on its own; give it alone")
    if kinds[0] == "compare":
        return _compare_folder(paths[0])
    if kinds[0] == "study":
        return _study_folder(paths[0])
    default = paths[0] / "report.html" if len(paths) == 1 else Path("report.html")
    roles = ["base"] + [None] * (len(paths) - 1) if len(paths) > 1 else [None]
    return ReportInputs([RunRef(p, role=r) for p, r in zip(paths, roles)], default, run_folders=True)


def _locate(listed: str, folder: Path, what: str) -> Path:
    """A run folder named in a compare/study file: as written (from here), else relative to that
    file's folder, else by its name inside or beside that folder (paths written relative to
    another working directory)."""
    name = Path(listed).name
    for candidate in (Path(listed), folder / listed, folder / name, folder.parent / name):
        if candidate.is_dir():
            return candidate
    raise UserError(f"{folder / what} lists the run folder {listed!r}, which is not found (from here or from "
                    f"{folder}); run the report where the comparison was made, or give the run folders instead")


def _compare_folder(folder: Path) -> ReportInputs:
    comparison = read_json(folder / "compare.json")
    listed = comparison.get("runs")
    if not isinstance(listed, list) or not listed:
        raise UserError(f"{folder / 'compare.json'}: no 'runs' list; write it again with `thinksafe compare`")
    runs = [RunRef(_locate(str(r["dir"]), folder, "compare.json"), str(r["name"]), "base" if i == 0 else None)
            for i, r in enumerate(listed)]
    return ReportInputs(runs, folder / "report.html", comparison)


def _compare_shaped(obj: Any) -> bool:
    return (isinstance(obj, Mapping) and isinstance(obj.get("runs"), list) and isinstance(obj.get("benchmarks"), Mapping)
            and all(isinstance(b, Mapping) and "comparisons" in b for b in obj["benchmarks"].values()))


_ROLE_RANK = {"base": 0, "reasoning": 1, "tuned": 2}


def study_run_refs(study: Mapping[str, Any], folder: Path) -> list[RunRef]:
    """One run per model of ``study.json``'s ``models`` list, bases first, then
    reasoning and tuned models; a model whose folder holds no run is left out.
    A model's ``dir`` is looked for as written, then inside ``folder``."""
    refs = []
    models = [m for m in study.get("models") or [] if isinstance(m, Mapping) and m.get("name")]
    for m in sorted(models, key=lambda m: _ROLE_RANK.get(m.get("role"), 3)):
        listed = Path(str(m.get("dir") or m["name"]))
        found = next((c for c in (listed, folder / listed, folder / listed.name) if c.is_dir()), None)
        if found is None:
            continue
        try:
            find_run_dirs(found)
        except FileNotFoundError:
            continue  # nothing ran for this model (its server was down, say)
        refs.append(RunRef(found, str(m["name"]), m.get("role")))
    return refs


def _study_folder(folder: Path) -> ReportInputs:
    study = read_json(folder / "study.json")
    runs = study_run_refs(study, folder)
    if not runs:
        subfolders = sorted(p for p in folder.iterdir() if p.is_dir() and _kind(p) == "run")
        if not subfolders:
            raise UserError(f"{folder}: study.json lists no model with results and no subfolder holds run folders")
        runs = [RunRef(p) for p in subfolders]
    comparison = next((c for c in (study.get("comparison"), study) if _compare_shaped(c)), None)
    if comparison is not None and len(comparison["runs"]) != len(runs):
        comparison = None
    return ReportInputs(runs, folder / "report.html", dict(comparison) if comparison else None)
