"""``thinksafe report``: tables, exports and the HTML page of one run or several."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UserError


def report(
    dirs: Annotated[list[Path], typer.Argument(
        metavar="DIR...", help="Run folders (the first is the base), a preset folder, a compare folder "
        "(compare.json) or a study folder (study.json).")],
    html: Annotated[Optional[Path], typer.Option(
        metavar="OUT.html", help="Where to write the page (default: DIR/report.html; for several run folders, "
        "./report.html).")] = None,
    fmt: Annotated[Optional[str], typer.Option(
        "--format", metavar="md|csv|json|latex",
        help="Print the headline tables in this format instead of writing the page (add --html to write both).")
    ] = None,
    images: Annotated[str, typer.Option(help="Sample images: embed (thumbnails) | link | none.")] = "embed",
    thumb_px: Annotated[int, typer.Option(min=32, help="Longest side of an embedded thumbnail.")] = 160,
    image_budget_mb: Annotated[float, typer.Option(
        min=0, help="Embedded thumbnails stop at this size; later images are linked.")] = 30.0,
    max_chars: Annotated[int, typer.Option(
        min=100, help="Longest text kept per field in the page (samples.jsonl keeps all).")] = 20_000,
) -> None:
    """Rewrite run folders' samples.jsonl / metrics.json from their stores, print the tables and write the
    HTML report (headline tables, plots, sample browser; one page for several runs)."""
    from rich.console import Console

    from ..report.headline import FORMATS, headline, print_headline, render
    from ..report.html import PageOptions, write_report
    from ..report.inputs import report_inputs
    from ..report.runs import load_runs
    from ..report.samples import ImageOptions

    if fmt is not None and fmt not in FORMATS:
        raise UserError(f"--format {fmt!r}: choose from {', '.join(FORMATS)}")
    if images not in ("embed", "link", "none"):
        raise UserError(f"--images {images!r}: choose embed, link or none")
    tables, messages = Console(), Console(stderr=True)
    inputs = report_inputs(dirs)
    if inputs.run_folders:
        _rewrite(inputs.runs, tables if fmt is None else None)
    comparison = inputs.resolve_comparison()
    if fmt is not None:
        typer.echo(render(headline(load_runs(inputs.runs), comparison), fmt), nl=False)
    elif len(inputs.runs) > 1 or not inputs.run_folders:
        print_headline(headline(load_runs(inputs.runs), comparison), tables)
    if fmt is not None and html is None:
        return
    options = PageOptions(images=ImageOptions(images, thumb_px, image_budget_mb), max_chars=max_chars,
                          notes=tuple(inputs.notes))
    out = write_report(inputs.runs, comparison, html or inputs.default_out, options)
    messages.print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB)", highlight=False)


def _rewrite(runs, console) -> None:
    from ..report.rerun import rewrite_results
    from ..report.table import print_run

    for run in runs:
        if not (Path(run.dir) / "run.json").is_file() and not any(Path(run.dir).glob("*/run.json")):
            continue  # results copied without their run.json: shown as they are
        for folder, metrics in rewrite_results(run.dir):
            if console is not None:
                print_run(metrics, folder, console)


def register(app: typer.Typer) -> None:
    """Add ``report`` to ``app``."""
    app.command("report")(report)
