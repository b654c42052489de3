"""``thinksafe benchmarks`` and ``thinksafe benchmarks show NAME``."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="List the benchmarks and their protocols.", invoke_without_command=True)

    @group.callback()
    def list_cmd(ctx: typer.Context) -> None:
        """List benchmarks with family, size, subsets, metric and source."""
        if ctx.invoked_subcommand:
            return
        from rich.console import Console
        from rich.table import Table

        from ..benchmarks import PRESETS, all_benchmarks

        t = Table(title="benchmarks")
        for col in ("name", "family", "size", "subsets", "metric", "source"):
            t.add_column(col, overflow="fold")
        for name, cls in sorted(all_benchmarks().items(), key=lambda kv: (kv[1].family, kv[0])):
            d = cls.describe()
            subsets = ", ".join(f"{k} ({'?' if v is None else v})" for k, v in d["subsets"].items())
            size = "from the data" if d["size"] is None else str(d["size"])
            if d["size_note"]:
                size += f" ({d['size_note']})"
            t.add_row(name, d["family"], size, subsets, d["metric"], d["source"])
        console = Console()
        console.print(t)
        for preset, names in PRESETS.items():
            console.print(f"preset [bold]{preset}[/bold]: {', '.join(names)}")

    @group.command("show")
    def show_cmd(name: Annotated[str, typer.Argument(help="Benchmark name.")]) -> None:
        """Print a benchmark's protocol: inputs, judge, metric, deviations."""
        from rich.console import Console

        from ..benchmarks import get_benchmark

        cls = get_benchmark(name)
        Console().print(cls.protocol_text(), markup=False, highlight=False)
        if cls.download_size:
            Console().print(f"\nDownload (without --data): {cls.download_size}", markup=False, highlight=False)

    app.add_typer(group, name="benchmarks")
