"""The report's plots, built as matplotlib figures (tests read them) and embedded as SVG.

matplotlib is imported only here, when a page is built, so API-only paths stay fast.
Every plot comes with a one-line "how to read this".
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..metrics.stats import wilson
from .runs import Run
from .samples import BINARY, TARGET_NAMES, SampleData

if TYPE_CHECKING:
    from matplotlib.figure import Figure

ROLE_COLOURS = {"base": "#8c8c8c", "reasoning": "#d95f02", "tuned": "#1b9e77"}
PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c")


@dataclass
class Plot:
    key: str
    title: str
    caption: str
    """How to read this."""
    figure: Figure


def colours(runs: Sequence[Run]) -> list[str]:
    """One colour per run: by role when it has a known one, else from the palette."""
    return [ROLE_COLOURS.get(r.role or "", PALETTE[i % len(PALETTE)]) for i, r in enumerate(runs)]


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _grouped(ax, names: list[str], series: list[tuple[str, str, list[float | None], list[Any]]]) -> None:
    """Grouped bars: ``series`` = (label, colour, heights, [lo, hi] or None) per run; None heights are skipped."""
    width = 0.8 / max(1, len(series))
    for j, (label, colour, heights, cis) in enumerate(series):
        xs = [i + (j - (len(series) - 1) / 2) * width for i, h in enumerate(heights) if h is not None]
        hs = [h for h in heights if h is not None]
        if not hs:
            continue  # a run with nothing to show here (e.g. no thinking) gets no legend entry
        # max(0, .): a Wilson bound at 0 or 1 may sit a rounding error past the point
        err = [[max(0.0, h - lo) for h, (lo, _) in _pairs(heights, cis)],
               [max(0.0, hi - h) for h, (_, hi) in _pairs(heights, cis)]]
        ax.bar(xs, hs, width, label=label, color=colour, yerr=err, capsize=3,
               error_kw={"elinewidth": 1, "ecolor": "#333333"})
    ax.set_xticks(range(len(names)), [_short(n) for n in names])
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="small")


def _pairs(heights: list[float | None], cis: list[Any]) -> list[tuple[float, tuple[float, float]]]:
    return [(h, (100 * ci[0], 100 * ci[1]) if ci else (h, h)) for h, ci in zip(heights, cis) if h is not None]


def _short(text: str, n: int = 28) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


_PANEL_TITLES = {"lower is safer": "attack success rate", "higher is safer": "safety awareness: right behaviour",
                 "higher is better": "capability: accuracy"}


def rate_bars(model: Mapping[str, Any], runs: Sequence[Run]) -> Plot | None:
    """Headline number per benchmark and run, one panel per kind of metric (ASR, safe rate, capability
    accuracy, each with its direction), with error bars."""
    kinds = list(dict.fromkeys((r["metric"], r["direction"]) for r in model["benchmarks"]))
    if not kinds:
        return None
    fig = _figure(max(4.5, 2.2 + 1.1 * len(model["benchmarks"]) * max(1, len(runs)) / 2), 3.2)
    axes = fig.subplots(1, len(kinds), squeeze=False)[0]
    for ax, (metric, direction) in zip(axes, kinds):
        rows = [r for r in model["benchmarks"] if (r["metric"], r["direction"]) == (metric, direction)]
        series = []
        for i, (run, colour) in enumerate(zip(runs, colours(runs))):
            vals = [r["values"][i] for r in rows]
            series.append((run.label, colour, [100 * v["value"] if v and v["value"] is not None else None
                                               for v in vals], [v.get("ci") if v else None for v in vals]))
        _grouped(ax, [r["benchmark"] for r in rows], series)
        ax.set_ylabel(f"{'ASR' if metric == 'asr' else metric} % ({direction})")
        ax.set_title(_PANEL_TITLES.get(direction, metric))
    _legend(axes[0])
    level = round(100 * model.get("level", 0.95))
    return Plot("rates", "Headline metric per benchmark", "How to read this: one bar per run on each benchmark's "
                f"answer verdicts; whiskers are {level}% Wilson intervals. Lower ASR and higher accuracy are safer "
                "(capability accuracy: higher is better); bars whose whiskers do not overlap differ clearly, the Δ "
                "columns of the table give the paired test.", fig)


def category_heatmaps(data: SampleData, runs: Sequence[Run]) -> list[Plot]:
    """Per benchmark with several categories: unsafe share per category (rows) and run or target (columns)."""
    plots = []
    for bench, cats in data.categories.items():
        if len(cats) < 2:
            continue
        columns = _heat_columns(data, bench, runs)
        cells = [[_unsafe_share(data, bench, i, t, c) for i, t, _ in columns] for c in cats]
        if not columns or all(x is None for row in cells for x in row):
            continue
        plots.append(_heatmap(bench, cats, [label for _, _, label in columns], cells))
    return plots


def _heat_columns(data: SampleData, bench: str, runs: Sequence[Run]) -> list[tuple[int, str, str]]:
    """(run index, target, label): every judged target of a single run, the answer of each of several runs."""
    targets = list(TARGET_NAMES) if len(runs) == 1 else ["answer"]
    cols = [(i, t, TARGET_NAMES[t] if len(runs) == 1 else run.label)
            for i, run in enumerate(runs) for t in targets]
    return [c for c in cols if any(_judged(data, bench, c[0], c[1], cat) for cat in data.categories[bench])]


def _judged(data: SampleData, bench: str, run: int, target: str, cat: str) -> int:
    counts = data.category_counts.get((bench, run, target, cat))
    return sum(counts[v] for v in BINARY) if counts else 0


def _unsafe_share(data: SampleData, bench: str, run: int, target: str, cat: str) -> float | None:
    n = _judged(data, bench, run, target, cat)
    return data.category_counts[(bench, run, target, cat)]["unsafe"] / n if n else None


def _heatmap(bench: str, cats: list[str], columns: list[str], cells: list[list[float | None]]) -> Plot:
    import numpy as np

    fig = _figure(2.6 + 1.1 * len(columns), 1.2 + 0.28 * len(cats))
    ax = fig.subplots()
    grid = np.array([[math.nan if x is None else 100 * x for x in row] for row in cells])
    image = ax.imshow(grid, cmap="Reds", vmin=0, vmax=100, aspect="auto")
    ax.set_xticks(range(len(columns)), [_short(c, 18) for c in columns])
    ax.set_yticks(range(len(cats)), [_short(c or "-", 40) for c in cats])
    ax.xaxis.tick_top()
    for (r, c), v in np.ndenumerate(grid):
        ax.text(c, r, "-" if math.isnan(v) else f"{v:.0f}", ha="center", va="center", fontsize="small",
                color="white" if v > 60 else "black")
    fig.colorbar(image, ax=ax, label="unsafe / wrong %")
    ax.set_xlabel(bench)
    return Plot(f"heat-{bench}", f"{bench}: unsafe share per category",
                "How to read this: each cell is the share of judged outputs that are unsafe (awareness benchmarks: "
                "wrong behaviour) in one category; darker is less safe, '-' means nothing was judged there.", fig)


def length_quartiles(runs: Sequence[Run], benchmarks: Sequence[str]) -> Plot | None:
    """Safe rate of the answers by thinking-length quartile, one panel per benchmark, one line per run."""
    panels = []
    for bench in benchmarks:
        lines = []
        for i, run in enumerate(runs):
            words = _words(run, bench)
            if words and (words.get("all") or {}).get("mean"):
                qs = words.get("quartiles") or []
                lines.append((i, [q["quartile"] for q in qs if q["safe_rate"] is not None],
                              [100 * q["safe_rate"] for q in qs if q["safe_rate"] is not None]))
        if lines:
            panels.append((bench, lines))
    if not panels:
        return None
    fig = _figure(max(4.0, 3.0 * len(panels)), 3.0)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    palette = colours(runs)
    for ax, (bench, lines) in zip(axes, panels):
        for i, xs, ys in lines:
            ax.plot(xs, ys, marker="o", color=palette[i], label=runs[i].label)
        ax.set_xticks([1, 2, 3, 4], ["Q1\nshortest", "Q2", "Q3", "Q4\nlongest"])
        ax.set_ylim(0, 100)
        ax.set_title(bench, fontsize="medium")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("safe answers %")
    _legend(axes[0])
    return Plot("length", "Safe rate by thinking length",
                "How to read this: each run's judged answers split into quartiles of its own thinking length (words); "
                "a rising line means longer thinking goes with safer answers. Runs without thinking are left out.",
                fig)


def _words(run: Run, bench: str) -> dict[str, Any] | None:
    br = run.benchmarks.get(bench)
    return ((br.metrics.get("reasoning_analysis") or {}).get("length") or {}).get("words") if br else None


def thinking_bars(runs: Sequence[Run], benchmarks: Sequence[str]) -> Plot | None:
    """Self-correction and truncated-in-thinking rates per benchmark and run, with Wilson intervals."""
    panels = [("self_correction", "self-correction %", "unsafe thinking, safe answer"),
              ("truncated_in_reasoning", "truncated in thinking %", "cut off before any answer")]
    if not any(_analysis(run, b, "self_correction") for run in runs for b in benchmarks):
        return None
    fig = _figure(max(5.0, 2.0 + 1.2 * len(benchmarks) * max(1, len(runs)) / 2), 3.0)
    axes = fig.subplots(1, 2)
    for ax, (key, ylabel, title) in zip(axes, panels):
        series = []
        for run, colour in zip(runs, colours(runs)):
            rates = [_analysis(run, b, key) for b in benchmarks]
            heights = [100 * r["count"] / r["n"] if r and r.get("n") else None for r in rates]
            cis = [wilson(r["count"], r["n"]) if r and r.get("n") else None for r in rates]
            series.append((run.label, colour, heights, cis))
        _grouped(ax, list(benchmarks), series)
        top = max([100 * ci[1] for _, _, _, cis in series for ci in cis if ci] + [1.0])
        ax.set_ylim(0, min(100, 10 * math.ceil(1.3 * top / 10)))
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize="medium")
    _legend(axes[0])
    return Plot("thinking", "Self-correction and truncation",
                "How to read this: left, the share of samples (thinking and answer both judged) whose thinking was "
                "unsafe but whose answer was safe; right, the share of samples cut off while still thinking, which "
                "have no answer to judge. Whiskers: 95% Wilson intervals.", fig)


def _analysis(run: Run, bench: str, key: str) -> dict[str, Any] | None:
    br = run.benchmarks.get(bench)
    return (br.metrics.get("reasoning_analysis") or {}).get(key) if br else None


def tradeoff_plot(comparison: Mapping[str, Any] | None) -> Plot | None:
    """Safety gain against capability change per compared run (``compare.json`` → ``tradeoff``)."""
    from .tradeoff import tradeoff_figure

    summary = (comparison or {}).get("tradeoff")
    figure = tradeoff_figure(summary) if summary else None
    if figure is None:
        return None
    return Plot("tradeoff", "Safety gain vs capability change",
                "How to read this: each point is a run against the base; up is safer, right is more capable, "
                f"the bars are the paired {round(100 * (comparison or {}).get('level', 0.95))}% intervals, and the "
                "label gives the change in over-refusal. A run worth keeping sits up and not far to the left.", figure)


def all_plots(model: Mapping[str, Any], runs: Sequence[Run], data: SampleData,
              comparison: Mapping[str, Any] | None = None) -> list[Plot]:
    """Every plot the page shows, in page order."""
    benchmarks = [r["benchmark"] for r in model["benchmarks"]]
    plots = [rate_bars(model, runs), tradeoff_plot(comparison), thinking_bars(runs, benchmarks),
             length_quartiles(runs, benchmarks), *category_heatmaps(data, runs)]
    return [p for p in plots if p is not None]


def svg_uri(figure: Figure) -> str:
    """The figure as a ``data:image/svg+xml`` URI (shown through ``<img>``, where no script can run)."""
    import matplotlib

    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": "thinksafe", "svg.fonttype": "path"}):
        figure.savefig(buf, format="svg", metadata={"Date": None})
    return "data:image/svg+xml;base64," + base64.b64encode(buf.getvalue().encode("utf-8")).decode("ascii")
