"""``study.json`` and ``study.md``: the study's table and its comparisons.

``study.json`` (schema ``thinksafe.study/1``, documented in ``docs/study.md``)
holds every model's value per benchmark, and one paired comparison per
(reference, model) pair from the config's ``compare_to``. The statistics are
:mod:`thinksafe.report.compare`'s, pair by pair: with the same seed per
benchmark, a pair gives the same numbers as ``thinksafe compare REF MODEL``.
Families, metric kinds and the sign of differences come from each benchmark's
declaration (``thinksafe.benchmarks.base.FAMILIES``): "+" always means better.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from ..benchmarks import headline
from ..report.compare import (SCALE, UNJUDGED_POLICY, CompareError, Run, benchmark_values, compare_loaded,
                              format_ci, format_flag, format_p, format_pct, load_bench_run, md_table)
from ..report.tradeoff import TRADEOFF_HEADER, tradeoff_legend, tradeoff_rows
from .config import StudyConfig
from .runner import Outcome

SCHEMA = "thinksafe.study/1"
_USABLE = ("done", "partial")


def _load_runs(cfg: StudyConfig, outcomes: list[Outcome]) -> dict[str, Run]:
    """Each model's usable benchmark folders as a compare ``Run`` (failed ones left out)."""
    runs = {m.name: Run(path=cfg.out / m.name, name=m.name) for m in cfg.models}
    for o in outcomes:
        if o.status in _USABLE:
            name, bench = load_bench_run(Path(o.job.cfg.out))
            runs[o.job.model].benchmarks[name] = bench
    return runs


def _pair(ref: Run, run: Run, cfg: StudyConfig) -> dict[str, Any]:
    entry: dict[str, Any] = {"reference": ref.name, "model": run.name, "benchmarks": {}, "families": {},
                             "skipped_benchmarks": {}, "warnings": [], "error": None}
    if not ref.benchmarks or not run.benchmarks:
        entry["error"] = f"{(ref if not ref.benchmarks else run).name} has no finished benchmark"
        return entry
    try:
        result = compare_loaded([ref, run], cfg.resamples, cfg.seed, cfg.alpha)
    except CompareError as exc:
        entry["error"] = str(exc)
        return entry
    entry["benchmarks"] = {b: {k: v for k, v in r["comparisons"][0].items() if k != "run"}
                           for b, r in result["benchmarks"].items()}
    entry["families"] = {f: {"benchmarks": r["comparisons"][0]["benchmarks"],
                             **{k: v for k, v in r["comparisons"][0].items() if k not in ("run", "benchmarks")}}
                         for f, r in result["families"].items()}
    entry["skipped_benchmarks"] = sorted(result["skipped_benchmarks"])
    entry["warnings"] = result["warnings"]
    entry["tradeoff"] = result["tradeoff"]  # safety gain / over-refusal / capability (None without them)
    return entry


def build_study(cfg: StudyConfig, outcomes: list[Outcome], specs: dict[str, str]) -> dict[str, Any]:
    """The ``study.json`` body.

    Args:
        cfg: The study config.
        outcomes: One per model x benchmark, as :func:`run_jobs` returns them.
        specs: Each model's resolved backend spec.
    """
    runs = _load_runs(cfg, outcomes)
    benches = [{"name": b.name, "subset": b.subset, **headline(b.name)} for b in cfg.benchmarks]
    families: dict[str, list[str]] = {}
    for b in benches:
        families.setdefault(b["family"], []).append(b["name"])
    status = {(o.job.model, o.job.benchmark): o for o in outcomes}
    values = {}
    for m in cfg.models:
        own = benchmark_values(runs[m.name], cfg.alpha)
        values[m.name] = {b.name: {"status": status[(m.name, b.name)].status,
                                   **{k: v for k, v in own.get(b.name, {}).items() if k != "run"}}
                          for b in cfg.benchmarks}
    comparisons = [_pair(runs[ref], runs[m.name], cfg) for m in cfg.models for ref in m.compare_to]
    return {
        "schema": SCHEMA,
        "config": str(cfg.path), "out": str(cfg.out),
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "stats": {"alpha": cfg.alpha, "level": 1 - cfg.alpha, "n_resamples": cfg.resamples, "seed": cfg.seed,
                  "scale": SCALE, "unjudged_policy": UNJUDGED_POLICY},
        "models": [{"name": m.name, "model": m.model, "spec": specs[m.name], "registry": m.registry_name,
                    "role": m.role, "compare_to": m.compare_to, "adapter": m.adapter, "dir": str(cfg.out / m.name)}
                   for m in cfg.models],
        "benchmarks": benches,
        "families": families,
        "runs": [o.to_dict() for o in outcomes],
        "values": values,
        "comparisons": comparisons,
        "failures": [{"model": o.job.model, "benchmark": o.job.benchmark, "status": o.status, "error": o.error}
                     for o in outcomes if o.status not in ("done",)],
        "warnings": list(cfg.warnings),
    }


# ---- study.md --------------------------------------------------------------------------

def _metric_label(b: dict[str, Any]) -> str:
    return f"{'ASR' if b['metric'] == 'asr' else b['metric']} % ({b['direction']})"


def _value_cell(v: dict[str, Any]) -> str:
    if v["status"] == "failed":
        return "failed"
    cell = f"{format_pct(v.get('value'))} {format_ci(v.get('ci'))}"
    return cell + (" (partial)" if v["status"] == "partial" else "")


def value_rows(study: dict[str, Any]) -> list[list[str]]:
    """The paper-style table: one row per benchmark, one column per model."""
    return [[b["family"], b["name"], _metric_label(b), *(_value_cell(study["values"][m["name"]][b["name"]])
                                                         for m in study["models"])]
            for b in sorted(study["benchmarks"], key=lambda b: b["family"])]


def _diff_row(c: dict[str, Any], ref: str, model: str, family: str, bench: str) -> list[str]:
    return [model, ref, family, bench, format_pct(c["diff"], True), format_ci(c["ci"], True),
            f"{c['improved']} / {c['worsened']}", format_p(c["p_mcnemar"]), f"{c['n_pairs']} ({c['dropped']})",
            format_flag(c)]


def diff_rows(study: dict[str, Any]) -> list[list[str]]:
    """One row per (model, reference, benchmark), then one per family (its mean)."""
    fam = {b["name"]: b["family"] for b in study["benchmarks"]}
    rows = []
    for c in study["comparisons"]:
        if c["error"]:
            rows.append([c["model"], c["reference"], "", "", "-", "-", "-", "-", "-", f"not compared: {c['error']}"])
            continue
        rows += [_diff_row(d, c["reference"], c["model"], fam[b], b) for b, d in c["benchmarks"].items()]
        rows += [_diff_row(d, c["reference"], c["model"], f, "mean of " + ", ".join(d["benchmarks"]))
                 for f, d in c["families"].items()]
    return rows


DIFF_HEADER = ["model", "vs", "family", "benchmark", "Δ (+ better)", "Δ CI", "improved / worsened", "McNemar p",
               "pairs (dropped)", "flag"]


def value_header(study: dict[str, Any]) -> list[str]:
    return ["family", "benchmark", "metric", *(f"{m['name']} ({m['role']})" for m in study["models"])]


def render_study(study: dict[str, Any]) -> str:
    """The ``study.md`` text."""
    s = study["stats"]
    level = round(100 * s["level"])
    parts = [f"# Study: {Path(study['config']).name}", "",
             f"Values in %, with {level}% Wilson intervals. Δ in percentage points: {s['scale']}; "
             f"\"+\" is always better. Δ CI: {level}% paired percentile bootstrap ({s['n_resamples']} resamples, "
             f"seed {s['seed']}). McNemar: exact two-sided test on the pairs whose verdict changed. DEGRADED: "
             f"the whole Δ CI lies below 0; improved: above 0. Unjudged samples: {s['unjudged_policy']}.", "",
             "## Results", "", md_table(value_header(study), value_rows(study)), "",
             "## Differences", "", md_table(DIFF_HEADER, diff_rows(study))]
    tradeoffs = [c for c in study["comparisons"] if c.get("tradeoff")]
    if tradeoffs:
        parts += ["", "## Safety / capability trade-off", "", tradeoff_legend(tradeoffs[0]["tradeoff"], "each reference"), "",
            md_table(["model", "reference", *TRADEOFF_HEADER[1:]],
                     [[c["model"], c["reference"], *tradeoff_rows(c["tradeoff"])[0][1:]] for c in tradeoffs])]
    notes = [f"* {f['model']} x {f['benchmark']}: {f['status']}: {f['error']}" for f in study["failures"]]
    notes += [f"* {w}" for c in study["comparisons"] for w in c["warnings"]]
    notes += [f"* {w}" for w in study["warnings"]]
    if notes:
        parts += ["", "## Failures and notes", "", *notes]
    return "\n".join(parts) + "\n"


def write_study(study: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """Write ``study.json`` and ``study.md`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    js, md = out / "study.json", out / "study.md"
    js.write_text(json.dumps(study, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    md.write_text(render_study(study), encoding="utf-8")
    return js, md


def write_html(study: dict[str, Any], out: Path) -> Path | None:
    """``OUT/report.html``: every model's runs on one page, bases first, with the
    paired comparison against the first base. None when no model has results."""
    from ..report.compare import CompareError, compare_runs
    from ..report.html import write_report
    from ..report.inputs import study_run_refs

    refs = study_run_refs(study, out)
    if not refs:
        return None
    stats = study.get("stats", {})
    try:
        comparison = compare_runs([r.dir for r in refs], n_resamples=stats.get("n_resamples", 10_000),
                                  seed=stats.get("seed", 0), alpha=stats.get("alpha", 0.05))
    except CompareError:
        comparison = None
    return write_report(refs, comparison, out / "report.html")
