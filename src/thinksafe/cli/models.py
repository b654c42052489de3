"""``thinksafe models`` and ``thinksafe models show NAME``: the model registry."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

RegistryOption = Annotated[Optional[Path], typer.Option(
    "--registry", help="Your own registry YAML, merged over the built-in one.")]


def vllm_command(entry) -> str:
    """A ``vllm serve`` line built from the entry's sourced flags."""
    v = entry["vllm"] or {}
    flags = {"--dtype": v.get("dtype"), "--max-model-len": v.get("max_model_len"),
             "--limit-mm-per-prompt": v.get("limit_mm_per_prompt"), "--reasoning-parser": v.get("reasoning_parser")}
    parts = ["vllm serve", entry.hub_id] + [f"{k} {val}" for k, val in flags.items() if val is not None]
    if entry["trust_remote_code"]:
        parts.append("--trust-remote-code")
    parts += [str(a) for a in v.get("extra_args") or []]
    return " ".join(parts)


def _value(entry, fact: str) -> str:
    from ..models.registry import BASE_RELATIONS, NOT_STATED, OUTPUT_FORMATS

    value = entry[fact]
    if value is None:
        return NOT_STATED
    if fact == "base":
        external = " (external)" if entry["base_external"] else ""
        return f"{value}{external}: {BASE_RELATIONS.get(entry['base_relation'], '?')}"
    if fact == "output_format":
        return f"{value}: {OUTPUT_FORMATS[value]}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, bool):
        return "needed" if value else "not needed"
    return str(value)


_LABELS = {"hub_id": "hub id", "base": "base", "architecture": "architecture", "output_format": "output format",
           "system_prompt": "system prompt", "sampling": "sampling", "vllm": "vllm serve flags",
           "trust_remote_code": "trust_remote_code"}


def show_entry(entry, registry, console: Any) -> None:
    """Print every field of an entry with its source."""
    from ..models.registry import SOURCED

    console.print(f"[bold]{entry.name}[/bold] - {entry['title'] or entry.hub_id} ({entry['kind']})")
    for fact in SOURCED:
        console.print(f"  {_LABELS[fact]:<18} {_value(entry, fact)}", markup=False, highlight=False)
        for url in entry.source(fact):
            console.print(f"  {'':<18}   source: {url}", markup=False, highlight=False)
    quirks = entry["quirks"] or []
    console.print(f"  {'known quirks':<18} {'none recorded' if not quirks else ''}".rstrip())
    for q in quirks:
        console.print(f"    - {q['text']}\n      source: {q['source']}", markup=False, highlight=False)
    derived = sorted(e.name for e in registry.entries.values() if e["base"] == entry.name)
    if derived:
        console.print(f"  {'compared with':<18} {', '.join(derived)}")
    console.print(f"\n  serve:  {vllm_command(entry)}", markup=False, highlight=False)
    console.print(f"  eval:   thinksafe eval --model {entry.name} --base-url http://HOST:PORT/v1 ...  "
                  f"(or without --base-url: hf/{entry.hub_id})", markup=False, highlight=False)
    console.print(f"  registry file: {entry.origin}", markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="The model registry: reasoning VLMs, their bases, and what their cards say.",
                        invoke_without_command=True)

    @group.callback()
    def list_cmd(ctx: typer.Context, registry: RegistryOption = None) -> None:
        """List the registry: name, kind, base, hub id, architecture, output format."""
        ctx.obj = registry
        if ctx.invoked_subcommand:
            return
        from rich.console import Console
        from rich.table import Table

        from ..models.registry import load_registry

        reg = load_registry(registry)
        t = Table(title=f"models ({len(reg.entries)}; `thinksafe models show NAME` for sources)")
        t.add_column("name", no_wrap=True)
        for col in ("kind", "base", "hub id", "architecture", "output format"):
            t.add_column(col, overflow="fold")
        for e in sorted(reg.entries.values(), key=lambda e: (e["kind"] != "base", e["base"] or e.name, e.name)):
            t.add_row(e.name, e["kind"], e["base"] or "-", e.hub_id, e["architecture"] or "-",
                      e["output_format"] or "-")
        Console().print(t)

    @group.command("show")
    def show_cmd(ctx: typer.Context, name: Annotated[str, typer.Argument(help="Registry name or hub id.")],
                 registry: RegistryOption = None) -> None:
        """Print one model's facts, each with its source, and how to serve and evaluate it."""
        from rich.console import Console

        from ..models.registry import load_registry

        reg = load_registry(registry or ctx.obj)
        show_entry(reg.require(name), reg, Console(soft_wrap=True))

    app.add_typer(group, name="models")
