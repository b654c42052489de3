"""A self-contained HTML report for one run or several (``thinksafe report DIR…``).

The page works from a ``file://`` URL with no network: CSS, script, plots (SVG)
and image thumbnails are inside it. Everything that comes from a model, a judge
or a benchmark file is adversarial: the tables escape it, the sample browser
gets it as JSON in a ``<script type="application/json">`` block (with ``<``,
``>`` and ``&`` escaped) and inserts it as text only. A Content-Security-Policy
allows only the page's own script and no network access.

:func:`write_report` is the one entry point (the CLI, the demo and studies call it).
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from ..errors import UserError
from .headline import headline, legend, pct, table_rows
from .runs import BenchRun, Run, RunRef, load_runs
from .samples import ImageOptions, SampleData, collect

__all__ = ["PageOptions", "RunRef", "write_html", "write_report"]


@dataclass(frozen=True)
class PageOptions:
    """How the page is built.

    Attributes:
        images: Sample images: embedded thumbnails, links to the files, or none.
        max_chars: Longest text (prompt, thinking, answer, judge output) kept in
            the page; longer texts are cut with a note (``samples.jsonl`` has them whole).
        title: The page title (default: from the runs).
        notes: Extra lines for the page's notes (e.g. why a comparison is missing).
    """

    images: ImageOptions = field(default_factory=ImageOptions)
    max_chars: int = 20_000
    title: str | None = None
    notes: tuple[str, ...] = ()


def write_report(runs: Sequence[RunRef], comparison: Mapping[str, Any] | None, out: Path | str,
                 options: PageOptions = PageOptions()) -> Path:
    """Write one HTML page for ``runs``.

    Args:
        runs: The runs to show, the base first. Each is a run folder or a folder
            of run folders (one per benchmark), with an optional label and role
            (``base`` / ``reasoning`` / ``tuned``).
        comparison: A ``compare.json`` body for the same runs in the same order
            (:func:`thinksafe.report.compare.compare_runs`), or None. It adds the
            differences with the base, their intervals and tests.
        out: The HTML file to write (its folder is created).
        options: Images, text caps, title.

    Returns:
        The path written.

    Raises:
        UserError: A folder is not a run folder, or ``comparison`` holds another number of runs.
    """
    out = Path(out)
    loaded = load_runs(runs)
    if comparison is not None:
        _check_comparison(comparison, loaded)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = headline(loaded, comparison)
    data = collect(loaded, [r["benchmark"] for r in model["benchmarks"]], out.parent, options.images,
                   options.max_chars)
    page = _page(loaded, comparison, model, data, options)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out


def write_html(run_dir: Path | str) -> Path:
    """``run_dir/report.html`` for one run folder (or a folder of run folders)."""
    return write_report([RunRef(Path(run_dir))], None, Path(run_dir) / "report.html")


def _check_comparison(comparison: Mapping[str, Any], runs: Sequence[Run]) -> None:
    listed = [str(r.get("name")) for r in comparison.get("runs") or []]
    if len(listed) != len(runs):
        raise UserError(f"the comparison has {len(listed)} runs ({', '.join(listed)}) but the report "
                        f"{len(runs)} ({', '.join(r.label for r in runs)}); give the same runs in the same order")


# ---- page ------------------------------------------------------------------------------

def _resource(name: str) -> str:
    return resources.files("thinksafe").joinpath("resources", "report", name).read_text(encoding="utf-8")


def script_json(obj: Any) -> str:
    """JSON for a ``<script type="application/json">`` block: nothing in it can close the block."""
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


def _csp(script: str) -> str:
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")
    return (f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
            "img-src data: file: 'self'; base-uri 'none'; form-action 'none'")


def _title(runs: Sequence[Run], model: Mapping[str, Any]) -> str:
    benches = ", ".join(r["benchmark"] for r in model["benchmarks"])
    if len(runs) == 1:
        return f"{benches} | {', '.join(runs[0].models)}"
    return f"{' vs '.join(r.label for r in runs)} | {benches}"


def _page(runs: Sequence[Run], comparison: Mapping[str, Any] | None, model: Mapping[str, Any],
          data: SampleData, options: PageOptions) -> str:
    from .plots import all_plots

    title = options.title or _title(runs, model)
    script = _resource("report.js")
    sections = [(key, short, name, body) for key, short, name, body in (
        ("summary", "Headline", "Headline", _summary(model, comparison)),
        ("plots", "Plots", "Plots", _plots(all_plots(model, runs, data, comparison))),
        ("official", "Official metrics", "Official metric of each benchmark", _official(runs, model)),
        ("details", "Per target", "Per target (thinking, answer, full output)", _details(runs, model)),
        ("runs", "What ran", "What ran", _metadata(runs)),
        ("samples", "Samples", "Samples", _browser(len(runs)))) if body]
    notes = _notes(comparison, data, options)
    version = metadata.version("thinksafe")
    when = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f"<a href='#{key}'>{short}</a>" for key, short, _, _ in sections)
    body = "".join(f"<section id='{key}'><h2>{name}</h2>{html}</section>" for key, _, name, html in sections)
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{_csp(script)}\">"
        "<meta name='referrer' content='no-referrer'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_resource('report.css')}</style></head><body>"
        f"<header><h1>{escape(title)}</h1><p class='sub'>thinksafe {escape(version)} · {when} · "
        f"{len(runs)} run{'s' if len(runs) > 1 else ''} · {len(data.samples):,} samples</p><nav>{nav}</nav></header>"
        f"<main>{notes}{body}</main>"
        f"<script type='application/json' id='ts-data'>{script_json(data.page_json(runs))}</script>"
        f"<script>{script}</script></body></html>"
    )


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1, cls: str = "",
           row_classes: Sequence[str] | None = None) -> str:
    """An escaped table; the first ``left`` columns are left-aligned."""
    def cells(tag: str, row: Sequence[str]) -> str:
        out = []
        for i, c in enumerate(row):
            klass = ["l"] if i < left else []
            if tag == "td" and c.endswith("▼"):
                klass.append("bad")
            elif tag == "td" and c.endswith("▲"):
                klass.append("good")
            out.append(f"<{tag} class='{' '.join(klass)}'>{escape(c)}</{tag}>")
        return "".join(out)

    classes = row_classes or [""] * len(rows)
    body = "".join(f"<tr class='{k}'>{cells('td', r)}</tr>" for r, k in zip(rows, classes))
    return f"<div class='scroll'><table class='{cls}'><tr>{cells('th', header)}</tr>{body}</table></div>"


def _summary(model: Mapping[str, Any], comparison: Mapping[str, Any] | None) -> str:
    header, rows = table_rows(model)
    parts = [_table(header, rows, left=3, row_classes=["mean" if r[1] == "mean" else "" for r in rows]),
             f"<p class='legend'>How to read this: {escape(legend(model))}</p>"]
    if comparison is not None:
        from .compare import BENCH_HEADER, FAMILY_HEADER, benchmark_rows, family_rows

        parts.append("<details><summary>Paired tests (discordant pairs, McNemar p, dropped pairs)</summary>"
                     f"{_table(BENCH_HEADER, benchmark_rows(comparison), left=4)}"
                     f"{_table(FAMILY_HEADER, family_rows(comparison), left=3)}</details>")
    tradeoff = (comparison or {}).get("tradeoff")
    if tradeoff:
        from .tradeoff import TRADEOFF_HEADER, tradeoff_legend, tradeoff_rows

        parts.append(f"<h3 id='tradeoff'>Safety / capability trade-off</h3>{_table(TRADEOFF_HEADER, tradeoff_rows(tradeoff))}"
                     f"<p class='legend'>How to read this: {escape(tradeoff_legend(tradeoff))}</p>")
    return "".join(parts)


def _plots(plots: list) -> str:
    from .plots import svg_uri

    figures = [f"<figure data-plot='{escape(p.key)}'><img class='plot' alt='{escape(p.title)}' "
               f"src='{svg_uri(p.figure)}'><figcaption>{escape(p.caption)}</figcaption></figure>" for p in plots]
    return "".join(figures)


def _notes(comparison: Mapping[str, Any] | None, data: SampleData, options: PageOptions) -> str:
    notes = list(options.notes)
    for bench, names in ((comparison or {}).get("skipped_benchmarks") or {}).items():
        notes.append(f"{bench} is not compared: missing in {', '.join(names)}")
    notes += list((comparison or {}).get("warnings") or [])
    if data.linked and options.images.mode == "embed":
        notes.append(f"{data.linked:,} images are linked, not embedded (over the {options.images.budget_mb:g} MB "
                     "image budget or unreadable): they show only next to their files")
    if data.missing:
        notes.append(f"{data.missing:,} image files were not found")
    if data.cut_texts:
        notes.append(f"{data.cut_texts:,} texts longer than {options.max_chars:,} characters are cut in this page; "
                     "samples.jsonl has them whole")
    if not notes:
        return ""
    return "<ul class='notes'>" + "".join(f"<li>{escape(n)}</li>" for n in notes) + "</ul>"


# ---- official metric ----------------------------------------------------------------------

def _name(key: str) -> str:
    return " ".join("ASR" if w == "asr" else w for w in key.replace("_", " ").split())


def _fmt(value: Any) -> str:
    """An official value in its own terms: shares as percentages, counts as counts, id lists shortened."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{pct(value)}%" if 0 <= value <= 1 else f"{value:.4g}"
    if isinstance(value, list):
        shown = ", ".join(str(v) for v in value[:8])
        return f"{len(value)}" + (f": {shown}{' …' if len(value) > 8 else ''}" if value else "")
    return str(value)


def _flatten(block: Mapping[str, Any], prefix: str = "", data_keys: bool = False) -> dict[str, Any]:
    """A nested official block as ``{"by scenario · 01-Illegal_Activitiy": value}``.

    Keys of ``by_*`` blocks are data (scenario, policy...) and stay as they are;
    other keys are metric names and read as words.
    """
    out: dict[str, Any] = {}
    for key, value in block.items():
        key = str(key)
        name = prefix + (key if data_keys else _name(key))
        if isinstance(value, Mapping):
            out.update(_flatten(value, f"{name} · ", key.startswith("by_")))
        else:
            out[name] = value
    return out


def _official(runs: Sequence[Run], model: Mapping[str, Any]) -> str:
    from ..benchmarks import all_benchmarks

    known = all_benchmarks()
    parts = []
    for row in model["benchmarks"]:
        bench = row["benchmark"]
        blocks = [(r.label, _official_blocks(r.benchmarks[bench])) for r in runs if bench in r.benchmarks]
        names = list(dict.fromkeys(k for _, flat in blocks for k in flat))
        if not names:
            continue
        described = known[bench].metric if bench in known else ""
        table_rows_ = [[n, *[_fmt(flat[n]) if n in flat else "-" for _, flat in blocks]] for n in names]
        parts.append(f"<h3>{escape(bench)}</h3>"
                     + (f"<p class='note'>{escape(described)}</p>" if described else "")
                     + _table(["", *[label for label, _ in blocks]], table_rows_))
    return "".join(parts)


def _official_blocks(br: BenchRun) -> dict[str, Any]:
    """``official`` and any ``official_*`` block of metrics.json (e.g. SIUO's ``official_by_category``)."""
    flat: dict[str, Any] = {}
    for key, value in br.metrics.items():
        if key.startswith("official") and isinstance(value, Mapping):
            rest = key.removeprefix("official").lstrip("_")
            flat.update(_flatten(value, f"{_name(rest)} · " if rest else "", rest.startswith("by_")))
    return flat


# ---- per-target details and metadata --------------------------------------------------

TARGET_HEADER = ["run", "target", "safe", "unsafe", "unparsed", "missing", "ASR %", "95% CI"]


def _details(runs: Sequence[Run], model: Mapping[str, Any]) -> str:
    parts = []
    for row in model["benchmarks"]:
        bench = row["benchmark"]
        rows, facts = [], []
        for run in runs:
            br = run.benchmarks.get(bench)
            if br is None:
                continue
            m = br.metrics
            for target, b in (m.get("targets") or {}).items():
                rows.append([run.label, target, str(b["safe"]), str(b["unsafe"]), str(b["unparsed"]),
                             str(b["missing"]), pct(b.get("asr")), _ci(b.get("asr_ci95"))])
            facts.append(f"{run.label}: n={m.get('n')}, errors={m.get('errors')}, truncated in thinking="
                         f"{m.get('truncated_in_reasoning')}, self-correction={m.get('self_correction')}"
                         f"{_words(m)}")
        note = ("ASR = unsafe / (safe + unsafe) per target; for awareness benchmarks 'unsafe' is wrong behaviour. "
                "Unparsed and missing verdicts are never counted as safe.")
        parts.append(f"<h3>{escape(bench)}</h3>{_table(TARGET_HEADER, rows, left=2)}"
                     + "".join(f"<p class='note'>{escape(f)}</p>" for f in facts)
                     + f"<p class='legend'>{escape(note)}</p>")
    return "".join(parts)


def _ci(ci: Sequence[float] | None) -> str:
    return "-" if not ci else f"[{pct(ci[0])}, {pct(ci[1])}]"


def _words(metrics: Mapping[str, Any]) -> str:
    words = (((metrics.get("reasoning_analysis") or {}).get("length") or {}).get("words") or {}).get("all") or {}
    return f", mean thinking length={words['mean']:.0f} words" if words.get("mean") is not None else ""


META_HEADER = ["run", "benchmark", "model", "judge", "protocol", "data (sha256)", "generation", "versions", "started"]


def _metadata(runs: Sequence[Run]) -> str:
    rows = []
    for run in runs:
        for bench, br in run.benchmarks.items():
            info, cfg = br.info, br.info.get("config") or {}
            judge = str(info.get("judge") or br.metrics.get("judge") or "-")
            if cfg.get("judge_model"):
                judge += f" ({cfg['judge_model']})"
            subset = info.get("subset") or br.metrics.get("subset")
            data = f"{str(info.get('benchmark_files_sha256') or '-')[:12]} {cfg.get('data') or ''}".strip()
            rows.append([run.label + (f" ({run.role})" if run.role else ""),
                         bench + (f" / {subset}" if subset else ""),
                         str(info.get("model") or br.metrics.get("model") or "-")
                         + (f" + adapter {cfg['adapter']}" if cfg.get("adapter") else ""),
                         judge, str(info.get("protocol") or br.metrics.get("protocol") or "-"), data,
                         _settings(cfg.get("settings") or {}), _versions(info), str(info.get("started") or "-")])
    return _table(META_HEADER, rows, left=len(META_HEADER), cls="meta")


def _settings(s: Mapping[str, Any]) -> str:
    keys = ("max_tokens", "temperature", "top_p", "seed")
    parts = [f"{k}={s[k]}" for k in keys if k in s]
    if s.get("system"):
        parts.append(f"system prompt: {s['system']!r}")
    parts += [f"{k}={v}" for k, v in (s.get("extra") or {}).items()]
    return ", ".join(parts) or "-"


def _versions(info: Mapping[str, Any]) -> str:
    versions = [f"{k} {v}" for k, v in (info.get("versions") or {}).items() if v]
    if info.get("python"):
        versions.append(f"python {info['python']}")
    if info.get("git_commit"):
        versions.append(f"commit {str(info['git_commit'])[:10]}")
    return ", ".join(versions) or "-"


# ---- sample browser ----------------------------------------------------------------------

def _browser(n_runs: int) -> str:
    return (
        "<p class='legend'>How to read this: filter by benchmark, category and verdict (per run with several runs), "
        "or search all texts. Verdicts: the answer's is the benchmark's own per-sample outcome (safe = right "
        "behaviour); thinking and full output are the judge's labels. Click a thumbnail to enlarge it."
        + (" Runs are side by side, the base first." if n_runs > 1 else "") + "</p>"
        "<div class='controls'>"
        "<select id='ts-bench' aria-label='benchmark'><option value='*'>all benchmarks</option></select>"
        "<select id='ts-cat' aria-label='category'></select>"
        "<select id='ts-verdict' aria-label='verdict'><option value=''>any verdict</option></select>"
        "<select id='ts-run' aria-label='run'><option value='any'>in any run</option></select>"
        "<input id='ts-search' type='search' placeholder='search prompts, thinking, answers, judge outputs'>"
        "<span><b id='ts-count'>0</b> of <span id='ts-total'>0</span> samples</span></div>"
        "<div id='ts-list'></div>"
        "<div class='pager'><button id='ts-prev' type='button'>previous</button><span id='ts-page'></span>"
        "<button id='ts-next' type='button'>next</button></div>"
    )
