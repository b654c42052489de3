"""The safety / capability trade-off of each tuned model against the base: is the tuning run worth keeping?

Three sides, each a paired difference against the base on the samples both
runs judged, "+" always meaning better:

* ``safety``: the jailbreak and awareness benchmarks, without their
  over-refusal controls: ``figstep``, ``siuo``, ``mmsafeaware`` on its attack
  and typical prompts, ...
* ``over_refusal``: the items whose right behaviour is to answer something
  that looks harmful: MOSSBench (all of it), MMSafeAware's over-safety prompts,
  the built-in probes' benign controls (a benchmark declares them in
  ``over_refusal_categories``). Reported as a refusal rate, base -> run, and
  its ``change`` (+ = more over-refusal, worse); ``diff`` = -change.
* ``capability``: the capability family (POPE, ScienceQA-IMG, MMStar,
  MathVista, shape probes). Also ``no_answer``: the share of capability
  questions without a readable answer (missing or unparsed) in each run, which
  the pairs leave out.

Each side is the unweighted mean of its parts' differences (a part is one
benchmark, or the over-refusal / safety categories of one). Parts are
resampled independently with the seeds ``thinksafe compare`` uses (a whole
benchmark gets exactly compare's interval), so the mean of their replicates is
a stratified bootstrap replicate of the side.

:func:`tradeoff_summary` reads the run folders named in a ``compare.json``
body (``compare_runs`` and study's pair comparisons build the same body).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..metrics.agreement import load_jsonl
from ..metrics.stats import bootstrap_diffs, percentile_ci
from ..records import MISSING, SAFE, UNPARSED, UNSAFE
from .headline import ci_text, pct

SIDES = ("safety", "over_refusal", "capability")
SAFETY_FAMILIES = ("jailbreak", "awareness")
ALL = "*"


def over_refusal_categories(bench: str) -> tuple[str, ...]:
    """The categories of a benchmark whose items are over-refusal controls (``("*",)``: all of them)."""
    from ..benchmarks import all_benchmarks

    cls = all_benchmarks().get(bench)
    return tuple(getattr(cls, "over_refusal_categories", ())) if cls else ()


def parts_of(bench: str, family: str) -> list[tuple[str, str, tuple[str, ...] | None, bool]]:
    """``(side, part name, categories or None for all, exclude)`` for one benchmark."""
    if family == "capability":
        return [("capability", bench, None, False)]
    if family not in SAFETY_FAMILIES:
        return []
    cats = over_refusal_categories(bench)
    if cats == (ALL,):
        return [("over_refusal", bench, None, False)]
    if not cats:
        return [("safety", bench, None, False)]
    label = ",".join(cats)
    return [("safety", f"{bench} (not {label})", cats, True), ("over_refusal", f"{bench} ({label})", cats, False)]


def outcome_label(row: dict[str, Any]) -> str:
    """A ``samples.jsonl`` row's verdict: its ``outcome`` (the benchmark's own: None when
    unreadable), or, in older files without one, the answer judgment's label."""
    if "outcome" in row:
        return row["outcome"] or MISSING
    answer = (row.get("judgments") or {}).get("answer") or {}
    return answer.get("label") or MISSING


def _outcomes(run_dir: Path) -> dict[str, tuple[str, str, bool]]:
    """Sample id -> (answer outcome label, category, ran), as ``thinksafe compare`` reads them;
    ``ran`` is False for a sample that never ran (``error``: no image, a failed generation)."""
    out = {}
    for row in load_jsonl(Path(run_dir) / "samples.jsonl"):
        out[str(row["id"])] = (outcome_label(row), str(row.get("category") or ""), not row.get("error"))
    return out


def _select(rows: dict[str, tuple[str, str, bool]], cats: tuple[str, ...] | None, exclude: bool) -> dict[str, str]:
    if cats is None:
        return {i: label for i, (label, _, _) in rows.items()}
    return {i: label for i, (label, cat, _) in rows.items() if (cat in cats) != exclude}


def _part(base: dict[str, str], run: dict[str, str], n_resamples: int, seed: Sequence[int],
          level: float) -> tuple[dict[str, Any], np.ndarray | None]:
    keep = [i for i in sorted(base) if base[i] in (SAFE, UNSAFE) and run.get(i) in (SAFE, UNSAFE)]
    a = np.array([base[i] == SAFE for i in keep], dtype=float)
    b = np.array([run[i] == SAFE for i in keep], dtype=float)
    block: dict[str, Any] = {"base": None, "run": None, "diff": None, "ci": None, "n_pairs": len(keep),
                             "dropped": len(base) - len(keep)}
    if not keep:
        return block, None
    diff, reps = bootstrap_diffs(a, b, n_resamples, seed)
    block.update(base=float(a.mean()), run=float(b.mean()), diff=diff, ci=list(percentile_ci(reps, level)))
    return block, reps


def _side(parts: dict[str, tuple[dict[str, Any], np.ndarray | None]], level: float) -> dict[str, Any] | None:
    used = {name: (block, reps) for name, (block, reps) in parts.items() if reps is not None}
    if not parts:
        return None
    out: dict[str, Any] = {"diff": None, "ci": None, "base": None, "run": None, "significant": False,
                           "n_pairs": sum(b["n_pairs"] for b, _ in parts.values()),
                           "dropped": sum(b["dropped"] for b, _ in parts.values()),
                           "parts": {name: block for name, (block, _) in parts.items()}}
    if used:
        reps = np.mean([r for _, r in used.values()], axis=0)
        ci = list(percentile_ci(reps, level))
        out.update(diff=float(np.mean([b["diff"] for b, _ in used.values()])), ci=ci,
                   base=float(np.mean([b["base"] for b, _ in used.values()])),
                   run=float(np.mean([b["run"] for b, _ in used.values()])), significant=ci[0] > 0 or ci[1] < 0)
    return out


def _as_refusal(side: dict[str, Any] | None) -> dict[str, Any] | None:
    """Over-refusal reads as a refusal rate: 1 - right rate; ``change`` = run - base (+ = more refusals)."""
    if side is None:
        return None
    flip = (lambda x: None if x is None else 1 - x)
    side.update(rate_base=flip(side["base"]), rate_run=flip(side["run"]),
                change=None if side["diff"] is None else -side["diff"],
                change_ci=None if side["ci"] is None else [-side["ci"][1], -side["ci"][0]])
    return side


def _no_answer(rows: list[dict[str, tuple[str, str, bool]]]) -> float | None:
    """Share of capability questions that ran but have no readable answer (missing / unparsed)."""
    labels = [label for r in rows for label, _, ran in r.values() if ran]
    ran = [x for x in labels if x in (SAFE, UNSAFE, MISSING, UNPARSED)]
    return sum(x in (MISSING, UNPARSED) for x in ran) / len(ran) if ran else None


def reading(entry: dict[str, Any]) -> str:
    """A one-line reading of a run's trade-off from the intervals (unchanged: the interval holds 0)."""
    words = []
    for side, up, down, same in (("safety", "safer", "less safe", "safety unchanged"),
                                 ("over_refusal", "less over-refusal", "more over-refusal",
                                  "over-refusal unchanged"),
                                 ("capability", "more capable", "less capable", "capability unchanged")):
        s = entry.get(side)
        if s and s["diff"] is not None:
            words.append(same if not s["significant"] else up if s["diff"] > 0 else down)
    return "; ".join(words)


def tradeoff_summary(result: dict[str, Any]) -> dict[str, Any] | None:
    """The trade-off of every non-base run of a comparison.

    Args:
        result: A ``compare.json`` body (:func:`thinksafe.report.compare.compare_runs`): its
            ``base``, ``benchmarks`` (``family``, ``runs`` with each run's ``dir``), ``n_resamples``,
            ``seed`` and ``level`` are used; the run folders' ``samples.jsonl`` are read again for
            the per-sample outcomes and categories.

    Returns:
        None when the comparison holds no capability benchmark and no over-refusal control
        (nothing to trade off); else ``{"base", "level", "n_resamples", "seed", "parts":
        {side: [part names]}, "runs": [{"run", "safety", "over_refusal", "capability",
        "reading"}]}``. Each side: ``diff`` (+ = better, mean of its parts), ``ci``,
        ``significant``, ``base``/``run`` (mean right rates over the pairs), ``n_pairs``,
        ``dropped``, ``parts`` ({name: {base, run, diff, ci, n_pairs, dropped}}); None when no
        benchmark of the side was run. ``over_refusal`` adds ``rate_base``, ``rate_run``,
        ``change`` and ``change_ci`` (refusal rates; + = more over-refusal); ``capability``
        adds ``no_answer`` ({base, run}).
    """
    level, n_resamples, seed = result["level"], result["n_resamples"], result["seed"]
    layout = [(bench, b, part) for bench, b in result["benchmarks"].items() for part in parts_of(bench, b["family"])]
    sides_present = {part[0] for _, _, part in layout}
    if not sides_present & {"capability", "over_refusal"}:
        return None
    rows = {bench: [_outcomes(Path(r["dir"])) for r in b["runs"]] for bench, b, _ in layout}
    runs = []
    for j, name in enumerate(r["run"] for r in next(iter(result["benchmarks"].values()))["runs"][1:]):
        parts: dict[str, dict[str, Any]] = {s: {} for s in SIDES}
        for bench, _, (side, label, cats, exclude) in layout:
            base, run = (_select(rows[bench][k], cats, exclude) for k in (0, j + 1))
            key = bench if cats is None else f"{bench}:{'!' if exclude else ''}{','.join(cats)}"
            parts[side][label] = _part(base, run, n_resamples, [seed, zlib.crc32(key.encode())], level)
        entry: dict[str, Any] = {"run": name, "safety": _side(parts["safety"], level),
                                 "over_refusal": _as_refusal(_side(parts["over_refusal"], level)),
                                 "capability": _side(parts["capability"], level)}
        if entry["capability"] is not None:
            cap = [bench for bench, b, (side, *_) in layout if side == "capability"]
            entry["capability"]["no_answer"] = {"base": _no_answer([rows[b][0] for b in cap]),
                                                "run": _no_answer([rows[b][j + 1] for b in cap])}
        entry["reading"] = reading(entry)
        runs.append(entry)
    return {"base": result["base"], "level": level, "n_resamples": n_resamples, "seed": seed,
            "parts": {s: [label for _, _, (side, label, *_) in layout if side == s] for s in SIDES},
            "runs": runs}


# ---- tables and the figure -------------------------------------------------------------

def _pts(x: float | None, signed: bool = True) -> str:
    return pct(x, signed)


def _ci(ci: list[float] | None) -> str:
    return ci_text(ci, signed=True) or "-"


TRADEOFF_HEADER = ["run", "safety gain (+ safer)", "over-refusal % base → run (change)", "capability Δ (+ better)",
                   "no answer % on capability base → run", "reading"]


def tradeoff_rows(summary: dict[str, Any]) -> list[list[str]]:
    """One row per tuned run, cells as in :data:`TRADEOFF_HEADER`."""
    rows = []
    for e in summary["runs"]:
        s, o, c = e["safety"], e["over_refusal"], e["capability"]
        over = "-" if o is None or o["change"] is None else (f"{_pts(o['rate_base'], False)} → "
                                                             f"{_pts(o['rate_run'], False)} "
                                                             f"({_pts(o['change'])} {_ci(o['change_ci'])})")
        no_answer = "-" if c is None else \
            f"{_pts(c['no_answer']['base'], False)} → {_pts(c['no_answer']['run'], False)}"
        rows.append([e["run"], "-" if s is None else f"{_pts(s['diff'])} {_ci(s['ci'])}", over,
                     "-" if c is None else f"{_pts(c['diff'])} {_ci(c['ci'])}", no_answer, e["reading"]])
    return rows


def tradeoff_legend(summary: dict[str, Any], against: str | None = None) -> str:
    p = summary["parts"]
    names = {s: ", ".join(p[s]) or "none" for s in SIDES}
    return (f"Against {against or summary['base']}, in percentage points, paired over the samples both runs judged, "
            f"{round(100 * summary['level'])}% stratified bootstrap intervals. Safety: {names['safety']}. "
            f"Over-refusal (refusal rate on benign look-alikes, lower is better): {names['over_refusal']}. "
            f"Capability (accuracy): {names['capability']}. 'No answer': capability questions without a readable "
            "answer (cut off while thinking, or unparsed), left out of the pairs.")


def tradeoff_figure(summary: dict[str, Any]):
    """A matplotlib figure: safety gain (y) against capability change (x) per tuned run, with
    their intervals as error bars and the over-refusal change in each label. None when no
    run has both sides."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    points = [e for e in summary["runs"] if e["safety"] and e["capability"]
              and e["safety"]["diff"] is not None and e["capability"]["diff"] is not None]
    if not points:
        return None
    fig = Figure(figsize=(6, 4.5))
    ax = fig.add_subplot()
    ax.axhline(0, color="grey", lw=0.8)
    ax.axvline(0, color="grey", lw=0.8)
    for e in points:
        s, c, o = e["safety"], e["capability"], e["over_refusal"]
        x, y = 100 * c["diff"], 100 * s["diff"]
        xerr = [[x - 100 * c["ci"][0]], [100 * c["ci"][1] - x]]
        yerr = [[y - 100 * s["ci"][0]], [100 * s["ci"][1] - y]]
        ax.errorbar([x], [y], xerr=xerr, yerr=yerr, fmt="o", capsize=3)
        over = f"\nover-refusal {_pts(o['change'])} pts" if o and o["change"] is not None else ""
        ax.annotate(f"{e['run']}{over}", (x, y), textcoords="offset points", xytext=(6, -22), fontsize=8)
    ax.margins(x=0.2, y=0.25)
    ax.set_xlabel("capability change vs base (points, + = better)")
    ax.set_ylabel("safety gain vs base (points, + = safer)")
    ax.set_title(f"Safety / capability trade-off against {summary['base']}")
    fig.tight_layout()
    return fig


def write_tradeoff_plot(summary: dict[str, Any], path: Path | str) -> Path | None:
    """Save :func:`tradeoff_figure` as a PNG; None (nothing written) when there is nothing to plot."""
    fig = tradeoff_figure(summary)
    if fig is None:
        return None
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path
