"""Paired comparison of runs (base vs reasoning vs tuned) over the same samples.

Every run is compared with the FIRST run (the base), benchmark by benchmark,
on the samples both runs have, paired by sample id. Differences are
sign-normalised so that "+" always means *better* than the base (safer, for
the safety families). How a benchmark's number reads comes from its family
(``thinksafe.benchmarks.base.FAMILIES``) or its own ``headline_metric``:

* "asr" benchmarks (jailbreak: ASR on the answer, lower is safer):
  ``base_asr - run_asr``;
* "accuracy" benchmarks (awareness: accuracy / safe rate, higher is safer;
  capability: accuracy, higher is better): ``run_acc - base_acc``, the
  per-sample outcome being the benchmark's own verdict in ``samples.jsonl``
  (``outcome``: ``safe`` = right behaviour or answer, ``unsafe`` = wrong).

Both are the mean of ``safe_run - safe_base`` over the pairs, so one paired
bootstrap and one McNemar test serve both. A pair is used only when both
answers are judged ``safe`` or ``unsafe``; pairs where either side is
unparsed/missing are dropped and counted.

When the runs hold capability benchmarks or over-refusal controls, the
result also carries the safety / capability trade-off of each run
(:mod:`thinksafe.report.tradeoff`).
"""

from __future__ import annotations

import json
import zlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any

import numpy as np

from ..benchmarks import headline
from ..errors import UserError
from ..metrics.agreement import find_run_dirs, load_jsonl, read_json
from ..metrics.stats import bootstrap_diffs, mcnemar_exact, percentile_ci, wilson
from ..records import SAFE, UNSAFE
from ..runinfo import NotARunFolder
from .headline import pct as _pct
from .runs import unique_names
from .tradeoff import (
    TRADEOFF_HEADER,
    outcome_label,
    tradeoff_legend,
    tradeoff_rows,
    tradeoff_summary,
    write_tradeoff_plot,
)

SCALE = ("run - base on a better-is-positive scale: ASR benchmarks base_asr - run_asr, "
         "accuracy benchmarks run_acc - base_acc")
UNJUDGED_POLICY = ("a pair is compared only when both answers are judged safe/unsafe; pairs where either side is "
                   "unparsed or missing are dropped and counted in 'dropped'; each run's own value uses all of "
                   "its judged samples")


class CompareError(UserError, ValueError):
    """Runs that cannot be compared (different samples, nothing in common...)."""


@dataclass
class BenchRun:
    """One run folder: one model on one benchmark."""

    dir: Path
    meta: dict[str, Any]
    metrics: dict[str, Any]
    labels: dict[str, str]
    """Sample id -> answer label."""


@dataclass
class Run:
    """A run given on the command line: one run folder or a preset folder of them."""

    path: Path
    name: str = ""
    benchmarks: dict[str, BenchRun] = field(default_factory=dict)

    @property
    def model(self) -> str:
        models = sorted({str(b.meta.get("model")) for b in self.benchmarks.values() if b.meta.get("model")})
        return ", ".join(models)


def _answer_labels(path: Path) -> dict[str, str]:
    labels: dict[str, str] = {}
    for lineno, row in enumerate(load_jsonl(path), 1):
        if row.get("id") is None:
            raise CompareError(f"{path}: record {lineno} has no 'id'")
        sid = str(row["id"])
        if sid in labels:
            raise CompareError(f"{path}: sample id {sid!r} appears twice")
        labels[sid] = outcome_label(row)
    return labels


def _benchmark_name(run_dir: Path, meta: dict[str, Any], metrics: dict[str, Any]) -> str:
    return str(meta.get("benchmark") or metrics.get("benchmark") or run_dir.name)


def load_run(path: Path | Sequence[Path]) -> Run:
    """Read a run folder, or a preset folder whose subfolders are run folders, or several
    such folders of one model (a list; the run is named after the first).

    Raises:
        CompareError: No run folder there, or one benchmark appears twice.
    """
    paths = [Path(path)] if isinstance(path, (str, Path)) else [Path(p) for p in path]
    path = paths[0]
    try:
        dirs = [d for p in paths for d in find_run_dirs(p)]
    except NotARunFolder as e:
        raise CompareError(str(e)) from None
    run = Run(path=path)
    for d in dirs:
        name, bench = load_bench_run(d)
        if name in run.benchmarks:
            raise CompareError(f"{path}: benchmark {name!r} appears twice ({run.benchmarks[name].dir.name}, {d.name})")
        run.benchmarks[name] = bench
    return run


def load_bench_run(run_dir: Path) -> tuple[str, BenchRun]:
    """One finished run folder (run.json, metrics.json, samples.jsonl): its benchmark name and contents."""
    meta, metrics = read_json(run_dir / "run.json"), read_json(run_dir / "metrics.json")
    return _benchmark_name(run_dir, meta, metrics), BenchRun(run_dir, meta, metrics,
                                                             _answer_labels(run_dir / "samples.jsonl"))


def _name_runs(runs: list[Run]) -> None:
    for run, name in zip(runs, unique_names([r.path for r in runs])):
        run.name = name


def _check_ids(bench: str, runs: list[Run]) -> list[str]:
    """Messages for the runs whose ids on ``bench`` differ from the base's."""
    base = set(runs[0].benchmarks[bench].labels)
    problems = []
    for run in runs[1:]:
        ids = set(run.benchmarks[bench].labels)
        lacks, extra = sorted(base - ids), sorted(ids - base)
        if lacks or extra:
            problems.append(f"{bench}: {run.name} lacks {len(lacks)} of the base's {len(base)} ids{_eg(lacks)} "
                            f"and has {len(extra)} ids the base ({runs[0].name}) lacks{_eg(extra)}")
    return problems


def _eg(ids: list[str]) -> str:
    return f" (e.g. {', '.join(ids[:3])})" if ids else ""


def _headline(bench: str, runs: list[Run]) -> dict[str, str]:
    """Family, metric kind and goal: the runs' recorded family, else the benchmark's declaration."""
    fam = next((str(r.benchmarks[bench].metrics["family"]) for r in runs
                if r.benchmarks[bench].metrics.get("family")), None)
    return headline(bench, fam)


def _run_value(run: Run, bench: str, kind: str, z: float) -> dict[str, Any]:
    """A run's own metric over all of its judged samples, with a Wilson interval."""
    counts = Counter(run.benchmarks[bench].labels.values())
    safe, unsafe = counts.pop(SAFE, 0), counts.pop(UNSAFE, 0)
    judged = safe + unsafe
    hits = unsafe if kind == "asr" else safe
    ci = wilson(hits, judged, z)
    out = {"run": run.name, "model": run.model, "dir": str(run.benchmarks[bench].dir),
           "value": hits / judged if judged else None, "ci": list(ci) if ci else None,
           "judged": judged, "safe": safe, "unsafe": unsafe, "unjudged": dict(sorted(counts.items()))}
    if "official" in run.benchmarks[bench].metrics:
        out["official"] = run.benchmarks[bench].metrics["official"]
    return out


def benchmark_values(run: Run, alpha: float = 0.05) -> dict[str, dict[str, Any]]:
    """Each benchmark's own value (ASR or accuracy, by its headline metric) for one run, with a Wilson interval."""
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return {bench: _run_value(run, bench, _headline(bench, [run])["metric"], z) for bench in run.benchmarks}


def _paired(base: dict[str, str], other: dict[str, str]) -> tuple[np.ndarray, np.ndarray, int]:
    """Safe indicators of the pairs both judged, in sorted id order, and the dropped count."""
    ids = sorted(base)
    keep = [i for i in ids if base[i] in (SAFE, UNSAFE) and other[i] in (SAFE, UNSAFE)]
    a = np.array([base[i] == SAFE for i in keep], dtype=float)
    b = np.array([other[i] == SAFE for i in keep], dtype=float)
    return a, b, len(ids) - len(keep)


def _verdict(diff: float | None, ci: list[float] | None, p: float, alpha: float) -> dict[str, Any]:
    degraded, improved = bool(ci is not None and ci[1] < 0), bool(ci is not None and ci[0] > 0)
    # "degradation"/"improvement" hold for every family; the safety_* names are kept for compare.json readers.
    return {"diff": diff, "ci": ci, "p_mcnemar": p, "significant": p < alpha, "degradation": degraded,
            "improvement": improved, "safety_degradation": degraded, "safety_improvement": improved}


def _comparison(run: Run, a: np.ndarray, b: np.ndarray, dropped: int, reps: np.ndarray | None,
                point: float | None, level: float, alpha: float) -> dict[str, Any]:
    improved = int(((a == 0) & (b == 1)).sum())
    worsened = int(((a == 1) & (b == 0)).sum())
    ci = list(percentile_ci(reps, level)) if reps is not None else None
    return {"run": run.name, "n_pairs": int(a.size), "dropped": dropped, "improved": improved, "worsened": worsened,
            **_verdict(point, ci, mcnemar_exact(improved, worsened), alpha)}


def _family_rows(benchmarks: dict[str, Any], reps: dict[tuple[str, str], np.ndarray],
                 runs: list[Run], level: float, alpha: float) -> dict[str, Any]:
    """Unweighted mean of the per-benchmark differences of each family.

    Benchmarks are resampled independently (seeds differ per benchmark), so the
    mean of their k-th replicates is a stratified bootstrap replicate of the
    family mean. McNemar pools the discordant pairs of the family's benchmarks.
    """
    families: dict[str, Any] = {}
    for fam in sorted({b["family"] for b in benchmarks.values()}):
        names = [n for n, b in benchmarks.items() if b["family"] == fam]
        rows = []
        for j, run in enumerate(runs[1:]):
            comps = {n: benchmarks[n]["comparisons"][j] for n in names}
            used = [n for n, c in comps.items() if c["diff"] is not None]
            improved = sum(c["improved"] for c in comps.values())
            worsened = sum(c["worsened"] for c in comps.values())
            diff = float(np.mean([comps[n]["diff"] for n in used])) if used else None
            ci = list(percentile_ci(np.mean([reps[(n, run.name)] for n in used], axis=0), level)) if used else None
            rows.append({"run": run.name, "benchmarks": used, "n_pairs": sum(c["n_pairs"] for c in comps.values()),
                         "dropped": sum(c["dropped"] for c in comps.values()), "improved": improved,
                         "worsened": worsened, **_verdict(diff, ci, mcnemar_exact(improved, worsened), alpha)})
        families[fam] = {"benchmarks": names, "comparisons": rows}
    return families


def _shared_benchmarks(runs: list[Run]) -> tuple[list[str], dict[str, list[str]]]:
    every = sorted(set().union(*(r.benchmarks for r in runs)))
    shared = [b for b in every if all(b in r.benchmarks for r in runs)]
    skipped = {b: [r.name for r in runs if b not in r.benchmarks] for b in every if b not in shared}
    if not shared:
        raise CompareError("the runs share no benchmark: " + "; ".join(f"{r.name}: {', '.join(sorted(r.benchmarks))}"
                                                                      for r in runs))
    return shared, skipped


def _judge_warnings(shared: list[str], runs: list[Run]) -> list[str]:
    """Benchmarks judged by different judges across runs: the difference then mixes model and judge."""
    out = []
    for bench in shared:
        judges = {r.name: r.benchmarks[bench].meta.get("judge") for r in runs}
        if len(set(judges.values())) > 1:
            out.append(f"{bench}: runs were judged by different judges "
                       f"({', '.join(f'{k}: {v}' for k, v in judges.items())}); differences mix model and judge")
    return out


def compare_runs(run_dirs: Sequence[Path | str | Sequence[Path | str]], n_resamples: int = 10_000, seed: int = 0,
                 alpha: float = 0.05) -> dict[str, Any]:
    """Compare every run with the first one (the base), per benchmark and per family.

    Args:
        run_dirs: Run folders or preset folders (or, per run, a list of them); the first is the base.
        n_resamples: Paired bootstrap replicates per benchmark and run.
        seed: Bootstrap seed; each benchmark derives its own from it and its name.
        alpha: ``1 - alpha`` is the level of every interval; McNemar's
            ``significant`` is ``p < alpha``.

    Returns:
        The ``compare.json`` body: ``base``, ``runs``, ``benchmarks`` (per run:
        ``value`` with ``ci``; per non-base run: ``diff`` on the safer-is-positive
        scale, bootstrap ``ci``, ``improved``/``worsened`` discordant pairs,
        ``p_mcnemar``, ``degradation``/``improvement`` flags (also as ``safety_degradation``/``safety_improvement``)),
        ``families`` (mean difference of their benchmarks) and ``skipped_benchmarks``
        (benchmarks some runs lack) and ``warnings`` (e.g. runs judged by
        different judges).

    Raises:
        CompareError: Fewer than two runs, no shared benchmark, or runs that do
            not have the same sample ids on a benchmark (all mismatches listed).
    """
    if len(run_dirs) < 2:
        raise CompareError("compare needs at least two runs (the first is the base)")
    runs = [load_run(d) for d in run_dirs]
    _name_runs(runs)
    return compare_loaded(runs, n_resamples, seed, alpha)


def compare_loaded(runs: list[Run], n_resamples: int = 10_000, seed: int = 0, alpha: float = 0.05) -> dict[str, Any]:
    """:func:`compare_runs` on runs already loaded and named (``runs[0]`` is the base)."""
    shared, skipped = _shared_benchmarks(runs)
    problems = [msg for bench in shared for msg in _check_ids(bench, runs)]
    if problems:
        raise CompareError("runs do not share the same sample ids:\n  " + "\n  ".join(problems))
    level = 1 - alpha
    z = NormalDist().inv_cdf(1 - alpha / 2)
    benchmarks: dict[str, Any] = {}
    reps: dict[tuple[str, str], np.ndarray] = {}
    for bench in shared:
        head = _headline(bench, runs)
        kind = head["metric"]
        base_labels = runs[0].benchmarks[bench].labels
        comparisons = []
        for run in runs[1:]:
            a, b, dropped = _paired(base_labels, run.benchmarks[bench].labels)
            point = None
            if a.size:
                # Same seed for every run on a benchmark: common random numbers across runs.
                point, reps[(bench, run.name)] = bootstrap_diffs(a, b, n_resamples, [seed, zlib.crc32(bench.encode())])
            comparisons.append(_comparison(run, a, b, dropped, reps.get((bench, run.name)), point, level, alpha))
        benchmarks[bench] = {
            "family": head["family"], "metric": kind, "goal": head["goal"],
            "direction": head["direction"],
            "n_ids": len(base_labels),
            "runs": [_run_value(r, bench, kind, z) for r in runs],
            "comparisons": comparisons,
        }
    result = {
        "base": runs[0].name,
        "runs": [{"name": r.name, "dir": str(r.path), "model": r.model} for r in runs],
        "alpha": alpha, "level": level, "n_resamples": n_resamples, "seed": seed,
        "scale": SCALE, "unjudged_policy": UNJUDGED_POLICY,
        "benchmarks": benchmarks,
        "families": _family_rows(benchmarks, reps, runs, level, alpha),
        "skipped_benchmarks": skipped,
        "warnings": _judge_warnings(shared, runs),
    }
    result["tradeoff"] = tradeoff_summary(result)
    return result


# ---- writers -------------------------------------------------------------------------

def _ci(ci: list[float] | None, signed: bool = False) -> str:
    return "-" if ci is None else f"[{_pct(ci[0], signed)}, {_pct(ci[1], signed)}]"


def _p(p: float) -> str:
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}"


def _flag(c: dict[str, Any]) -> str:
    return "DEGRADED" if c["degradation"] else "improved" if c["improvement"] else ""


def benchmark_rows(result: dict[str, Any]) -> list[list[str]]:
    """Table rows: benchmark, family, metric, run, value [CI], diff, CI, improved/worsened, p, pairs, flag."""
    rows = []
    for bench, b in result["benchmarks"].items():
        metric = f"{b['metric'].upper() if b['metric'] == 'asr' else b['metric']} % ({b['direction']})"
        base = b["runs"][0]
        rows.append([bench, b["family"], metric, f"{base['run']} (base)", f"{_pct(base['value'])} {_ci(base['ci'])}",
                     "", "", "", "", f"{base['judged']} judged", ""])
        for r, c in zip(b["runs"][1:], b["comparisons"]):
            rows.append(["", "", "", r["run"], f"{_pct(r['value'])} {_ci(r['ci'])}", _pct(c["diff"], True),
                         _ci(c["ci"], True), f"{c['improved']} / {c['worsened']}", _p(c["p_mcnemar"]),
                         f"{c['n_pairs']} ({c['dropped']})", _flag(c)])
    return rows


def family_rows(result: dict[str, Any]) -> list[list[str]]:
    """Table rows: family, run, benchmarks, mean diff, CI, improved/worsened, pooled p, pairs, flag."""
    rows = []
    for fam, f in result["families"].items():
        for c in f["comparisons"]:
            rows.append([fam, c["run"], ", ".join(c["benchmarks"]), _pct(c["diff"], True), _ci(c["ci"], True),
                         f"{c['improved']} / {c['worsened']}", _p(c["p_mcnemar"]),
                         f"{c['n_pairs']} ({c['dropped']})", _flag(c)])
    return rows


# Cell formatting shared with the study tables.
format_pct, format_ci, format_p, format_flag = _pct, _ci, _p, _flag

BENCH_HEADER = ["benchmark", "family", "metric", "run", "value [CI]", "Δ vs base (+ better)", "Δ CI",
                "improved / worsened", "McNemar p", "pairs (dropped)", "flag"]
FAMILY_HEADER = ["family", "run", "benchmarks", "mean Δ (+ better)", "Δ CI", "improved / worsened",
                 "McNemar p (pooled)", "pairs (dropped)", "flag"]


def _legend(result: dict[str, Any]) -> str:
    level = round(100 * result["level"])
    return (f"Base: **{result['base']}**. Values and differences in percentage points. Δ = {SCALE}. "
            f"Δ CI: {level}% paired percentile bootstrap ({result['n_resamples']} resamples, seed {result['seed']}); "
            f"value CI: {level}% Wilson. McNemar: exact two-sided test on the discordant pairs "
            f"(improved = unsafe/wrong in base, safe/right in run). DEGRADED: the Δ CI lies entirely below 0. "
            f"Unjudged samples: {UNJUDGED_POLICY}.")


def md_table(header: list[str], rows: list[list[str]]) -> str:
    """A Markdown table (cells' "|" escaped)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(result: dict[str, Any]) -> str:
    """The ``compare.md`` text: legend, per-benchmark and per-family tables."""
    parts = ["# Safety comparison", "", _legend(result), "", "## Per benchmark", "",
             md_table(BENCH_HEADER, benchmark_rows(result)), "", "## Per family", "",
             "Unweighted mean of the family's benchmark differences; stratified bootstrap CI.", "",
             md_table(FAMILY_HEADER, family_rows(result))]
    if result.get("tradeoff"):
        parts += ["", "## Safety / capability trade-off", "", tradeoff_legend(result["tradeoff"]), "",
                  md_table(TRADEOFF_HEADER, tradeoff_rows(result["tradeoff"]))]
    notes = [f"* skipped {b}: missing in {', '.join(names)}" for b, names in result["skipped_benchmarks"].items()]
    notes += [f"* {w}" for w in result["warnings"]]
    if notes:
        parts += ["", "## Notes", "", *notes]
    return "\n".join(parts) + "\n"


def write_compare(result: dict[str, Any], out_dir: Path | str) -> tuple[Path, Path]:
    """Write ``compare.json`` and ``compare.md`` into ``out_dir`` (created if needed), and
    ``tradeoff.png`` (safety gain against capability change) when the trade-off has both sides."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "compare.json", out / "compare.md"
    js.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md.write_text(render_markdown(result), encoding="utf-8")
    if result.get("tradeoff"):
        write_tradeoff_plot(result["tradeoff"], out / "tradeoff.png")
    return js, md


def print_compare(result: dict[str, Any], console: Any = None) -> None:
    """Print the per-benchmark and per-family tables with rich."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    for title, header, rows in (("Per benchmark", BENCH_HEADER, benchmark_rows(result)),
                                ("Per family (mean of benchmarks)", FAMILY_HEADER, family_rows(result))):
        table = Table(title=title)
        for col in header:
            table.add_column(col)
        for row in rows:
            style = "bold red" if row[-1] == "DEGRADED" else "green" if row[-1] == "improved" else None
            table.add_row(*row, style=style)
        console.print(table)
    if result.get("tradeoff"):
        table = Table(title="Safety / capability trade-off (vs base)")
        for col in TRADEOFF_HEADER:
            table.add_column(col, overflow="fold")
        for row in tradeoff_rows(result["tradeoff"]):
            table.add_row(*row)
        console.print(table)
        console.print(tradeoff_legend(result["tradeoff"]), highlight=False)
    for bench, names in result["skipped_benchmarks"].items():
        console.print(f"[yellow]skipped {bench}: missing in {', '.join(names)}[/yellow]")
    for warning in result["warnings"]:
        console.print(f"[yellow]warning: {warning}[/yellow]", highlight=False)
    console.print(_legend(result).replace("**", ""))
