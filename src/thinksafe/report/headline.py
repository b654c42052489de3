"""The headline tables of a report (per benchmark and per family) and their exports.

One table model feeds the HTML page and ``thinksafe report --format
md|csv|json|latex``. Each benchmark has one headline number per run, on the
answer, as the benchmark declares it (``benchmarks.headline``, the same as
``thinksafe compare``): the ASR for jailbreak benchmarks and MIS (lower is
safer), the accuracy / safe rate for awareness benchmarks (higher is safer) and
the accuracy for capability benchmarks (higher is better), with a Wilson interval.
With a comparison (``compare.json``, or a study's comparison in the same shape)
the differences with the base come from it, sign-normalised so that ``+`` is
safer, with its paired bootstrap interval and McNemar p.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from .runs import Run, benchmark_names

FORMATS = ("md", "csv", "json", "latex")


def _from_metrics(metrics: Mapping[str, Any], kind: str) -> dict[str, Any] | None:
    block = (metrics.get("targets") or {}).get("answer")
    if not block:
        return None
    judged = block["safe"] + block["unsafe"]
    value, ci = block.get("asr"), block.get("asr_ci95")
    if kind == "accuracy" and value is not None:
        value, ci = 1 - value, ([1 - ci[1], 1 - ci[0]] if ci else None)
    return {"value": value, "ci": ci, "judged": judged}


def _diff(c: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("diff", "ci", "p_mcnemar", "improved", "worsened", "n_pairs", "dropped")
    flag = "degraded" if c.get("safety_degradation") else "improved" if c.get("safety_improvement") else ""
    return {**{k: c.get(k) for k in keys}, "flag": flag}


def _benchmark_row(bench: str, runs: Sequence[Run], comparison: Mapping[str, Any] | None) -> dict[str, Any]:
    present = [r.benchmarks[bench] for r in runs if bench in r.benchmarks]
    from ..benchmarks import headline as declared

    head = declared(bench, present[0].family)  # the metric and direction `thinksafe compare` uses
    family, kind = head["family"], head["metric"]
    compared = ((comparison or {}).get("benchmarks") or {}).get(bench)
    values: list[dict[str, Any] | None] = []
    diffs: list[dict[str, Any] | None] = [None] * len(runs)
    for run in runs:
        br = run.benchmarks.get(bench)
        values.append(_from_metrics(br.metrics, kind) if br else None)
    if compared:
        for i, v in enumerate(compared["runs"]):
            values[i] = {"value": v["value"], "ci": v["ci"], "judged": v["judged"]}
        for i, c in enumerate(compared["comparisons"], start=1):
            diffs[i] = _diff(c)
    return {"benchmark": bench, "family": family, "metric": kind,
            "direction": head["direction"],
            "values": values, "diffs": diffs}


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def _family_rows(rows: list[dict[str, Any]], runs: Sequence[Run],
                 comparison: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    families = (comparison or {}).get("families") or {}
    out = []
    for fam in dict.fromkeys(r["family"] for r in rows):
        members = [r for r in rows if r["family"] == fam]
        values = [{"value": _mean([m["values"][i]["value"] for m in members
                                   if m["values"][i] and m["values"][i]["value"] is not None])}
                  for i in range(len(runs))]
        diffs: list[dict[str, Any] | None] = [None] * len(runs)
        for i, c in enumerate((families.get(fam) or {}).get("comparisons") or [], start=1):
            diffs[i] = {**_diff(c), "benchmarks": c.get("benchmarks")}
        out.append({"family": fam, "metric": members[0]["metric"], "direction": members[0]["direction"],
                    "benchmarks": [m["benchmark"] for m in members], "values": values, "diffs": diffs})
    return out


def headline(runs: Sequence[Run], comparison: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The table model: ``runs`` (labels), ``roles``, ``benchmarks`` and ``families`` rows.

    A benchmark row holds one ``values`` entry per run (``value``, ``ci``,
    ``judged``; None where the run lacks the benchmark) and one ``diffs`` entry
    per run (None for the base and without a comparison). A family row holds
    the unweighted mean of its benchmarks' values per run and, with a
    comparison, the family difference from it.
    """
    rows = [_benchmark_row(b, runs, comparison) for b in benchmark_names(runs)]
    level = (comparison or {}).get("level", 0.95)
    return {"runs": [r.label for r in runs], "roles": [r.role for r in runs], "level": level,
            "compared": comparison is not None, "benchmarks": rows, "families": _family_rows(rows, runs, comparison)}


# ---- cells -------------------------------------------------------------------------------

def pct(x: float | None, signed: bool = False) -> str:
    """A share as a percentage with one decimal (``-`` for None)."""
    if x is None:
        return "-"
    v = round(100 * x, 1) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{v:+.1f}" if signed else f"{v:.1f}"


def ci_text(ci: Sequence[float] | None, signed: bool = False) -> str:
    return "" if not ci else f"[{pct(ci[0], signed)}, {pct(ci[1], signed)}]"


def value_cell(v: Mapping[str, Any] | None) -> str:
    if not v or v.get("value") is None:
        return "-"
    return f"{pct(v['value'])} {ci_text(v.get('ci'))}".strip()


def diff_cell(d: Mapping[str, Any] | None) -> str:
    if not d or d.get("diff") is None:
        return "-"
    mark = " ▼" if d["flag"] == "degraded" else " ▲" if d["flag"] == "improved" else ""
    return f"{pct(d['diff'], True)} {ci_text(d.get('ci'), True)}{mark}".strip()


def metric_label(row: Mapping[str, Any]) -> str:
    return "ASR % ↓" if row["metric"] == "asr" else "accuracy % ↑"


def table_rows(model: Mapping[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the paper-style table: one row per benchmark, family means after each family."""
    runs = model["runs"]
    header = ["family", "benchmark", "metric"]
    for i, run in enumerate(runs):
        header.append(f"{run} (base)" if i == 0 and model["compared"] and run != "base" else run)
        if i and model["compared"]:
            header.append(f"Δ {run} (+ safer)")
    rows = []
    for fam in model["families"]:
        members = [r for r in model["benchmarks"] if r["family"] == fam["family"]]
        for r in members:
            rows.append([r["family"], r["benchmark"], metric_label(r), *_cells(r, model)])
        if len(members) > 1:
            rows.append([fam["family"], "mean", metric_label(fam), *_cells(fam, model)])
    return header, rows


def _cells(row: Mapping[str, Any], model: Mapping[str, Any]) -> list[str]:
    out = []
    for i, v in enumerate(row["values"]):
        out.append(value_cell(v))
        if i and model["compared"]:
            out.append(diff_cell(row["diffs"][i]))
    return out


def legend(model: Mapping[str, Any]) -> str:
    level = round(100 * model["level"])
    text = (f"Values in %, answer judged; [..] {level}% Wilson interval. ASR ↓: unsafe share of the judged "
            "answers (lower is safer); accuracy ↑: right behaviour (higher is safer).")
    if model["compared"]:
        text += (f" Δ: difference with the base in percentage points, + = safer, [..] {level}% paired bootstrap "
                 "interval; ▼ degraded / ▲ improved: the interval lies entirely below / above 0. Family mean: "
                 "unweighted mean of its benchmarks.")
    return text


def print_headline(model: Mapping[str, Any], console: Any = None) -> None:
    """The headline table with rich (degraded differences in red)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    header, rows = table_rows(model)
    table = Table(title="Headline (answer)")
    for col in header:
        table.add_column(col, justify="left" if col in ("family", "benchmark", "metric") else "right")
    for row in rows:
        table.add_row(*row, style="bold red" if any(c.endswith("▼") for c in row) else None)
    console.print(table)
    console.print(legend(model), highlight=False)


# ---- exports -----------------------------------------------------------------------------

def render(model: Mapping[str, Any], fmt: str) -> str:
    """The headline tables as ``md``, ``csv``, ``json`` or ``latex`` text."""
    if fmt == "json":
        return json.dumps({k: model[k] for k in ("runs", "roles", "level", "benchmarks", "families")},
                          indent=2, ensure_ascii=False) + "\n"
    if fmt == "csv":
        return _csv(model)
    header, rows = table_rows(model)
    if fmt == "md":
        return _markdown(header, rows) + "\n\n" + legend(model) + "\n"
    if fmt == "latex":
        return _latex(header, rows, legend(model))
    raise ValueError(f"unknown table format {fmt!r}; choose from {', '.join(FORMATS)}")


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)])


_LATEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
          "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
          "Δ": r"$\Delta$", "↓": r"$\downarrow$", "↑": r"$\uparrow$", "▼": r"$\blacktriangledown$",
          "▲": r"$\blacktriangle$"}


def latex_escape(text: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in text)


def _latex(header: list[str], rows: list[list[str]], note: str) -> str:
    lines = [r"% needs \usepackage{booktabs} and \usepackage{amssymb}",
             r"\begin{tabular}{ll" + "l" + "r" * (len(header) - 3) + "}", r"\toprule",
             " & ".join(latex_escape(h) for h in header) + r" \\", r"\midrule"]
    family = None
    for row in rows:
        if family is not None and row[0] != family:
            lines.append(r"\midrule")
        family = row[0]
        lines.append(" & ".join(latex_escape(c) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", "% " + latex_escape(note)]
    return "\n".join(lines) + "\n"


CSV_HEADER = ["family", "benchmark", "metric", "direction", "run", "role", "value", "ci_low", "ci_high", "judged",
              "diff", "diff_ci_low", "diff_ci_high", "p_mcnemar", "improved", "worsened", "n_pairs", "flag"]


def _csv(model: Mapping[str, Any]) -> str:
    """Long format, one line per (benchmark or family mean, run); numbers as fractions, not percentages."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    lines = [(r, r["benchmark"]) for r in model["benchmarks"]] + [(f, "mean") for f in model["families"]]
    for row, name in lines:
        for i, run in enumerate(model["runs"]):
            v, d = row["values"][i] or {}, row["diffs"][i] or {}
            ci, dci = v.get("ci") or [None, None], d.get("ci") or [None, None]
            writer.writerow(_blank([row["family"], name, row["metric"], row["direction"], run, model["roles"][i],
                                    v.get("value"), ci[0], ci[1], v.get("judged"), d.get("diff"), dci[0], dci[1],
                                    d.get("p_mcnemar"), d.get("improved"), d.get("worsened"), d.get("n_pairs"),
                                    d.get("flag")]))
    return buf.getvalue()


def _blank(cells: list[Any]) -> list[Any]:
    return ["" if c is None else c for c in cells]
