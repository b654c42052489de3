"""``thinksafe data build | validate | convert``: TiS-style safety-thinking data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError

def _console():
    from rich.console import Console

    return Console(stderr=True, soft_wrap=True)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Build, validate and convert safety-thinking training data.", no_args_is_help=True)
    group.command("build")(build_cmd)
    group.command("validate")(validate_cmd)
    group.command("convert")(convert_cmd)
    app.add_typer(group, name="data")


def build_cmd(
    source: Annotated[list[str], typer.Option(help="KIND:PATH[?opts]; kinds jsonl, vlguard, spavl, tis, mis, run. "
                                                   "Repeat for several sources.")],
    out: Annotated[Path, typer.Option(help="Output folder (re-running resumes from its cache).")],
    captioner: Annotated[Optional[str], typer.Option(help="Captioning VLM: openai/NAME or hf/PATH (one caption "
                                                          "per image).")] = None,
    teacher: Annotated[Optional[str], typer.Option(help="Teacher reasoning model: openai/NAME or hf/PATH.")] = None,
    as_released: Annotated[bool, typer.Option("--as-released", help="No model: each source's own rows as released "
                                                                    "(its thought if any, its answer); the "
                                                                    "baseline datasets.")] = False,
    base_url: Annotated[Optional[list[str]], typer.Option(help="OpenAI-compatible server(s) for all models: "
                                                          "repeat or comma-separate for several.")] = None,
    captioner_base_url: Annotated[Optional[list[str]], typer.Option(help="Server(s) of the captioner.")] = None,
    teacher_base_url: Annotated[Optional[list[str]], typer.Option(help="Server(s) of the teacher.")] = None,
    api_key_env: Annotated[str, typer.Option(help="Environment variable holding the API key.")] = "OPENAI_API_KEY",
    judge: Annotated[str, typer.Option(help="Answer-safety judge for harmful seeds: auto (llm with "
                                            "--judge-model, else refusal) | refusal | llm | none.")] = "auto",
    judge_model: Annotated[Optional[str], typer.Option(help="Judge model, e.g. openai/gpt-4o-mini.")] = None,
    judge_base_url: Annotated[Optional[list[str]], typer.Option(help="Server(s) of the judge / consistency model."
                                                                )] = None,
    consistency_model: Annotated[Optional[str], typer.Option(
        help="Optional LLM check that the answer follows the thought's decision.")] = None,
    policy: Annotated[Optional[Path], typer.Option(help="Policy YAML/Markdown (default: shipped tis-policy v1).")
                      ] = None,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N seeds (all sources together).")] = None,
    concurrency: Annotated[int, typer.Option(help="Requests in flight per stage.")] = 8,
    teacher_max_tokens: Annotated[int, typer.Option(help="Teacher token limit (thought + answer).")] = 8192,
    teacher_temperature: Annotated[float, typer.Option(help="Teacher sampling temperature.")] = 0.6,
    caption_max_tokens: Annotated[int, typer.Option(help="Captioner token limit.")] = 1024,
    min_thought_words: Annotated[int, typer.Option(help="Shortest thought kept.")] = 15,
    max_thought_words: Annotated[int, typer.Option(help="Longest thought kept.")] = 3000,
    minhash: Annotated[Optional[float], typer.Option(help="Also drop near-duplicates above this MinHash "
                                                          "similarity (e.g. 0.9).")] = None,
    copy_images: Annotated[bool, typer.Option(help="Copy images under OUT/images and use relative paths.")
                           ] = False,
    llavacot: Annotated[bool, typer.Option(help="Also write tis_llavacot.json (LLaVA-CoT stage tags).")] = False,
    name: Annotated[str, typer.Option(help="Dataset name in dataset_info.json.")] = "tis",
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
) -> None:
    """Build TiS-style data: caption, think under a policy, filter, export (or, with --as-released,
    each source's own rows)."""
    from ..data.build import BuildConfig
    from ..data.filters import Bounds
    from .app import join_urls

    cfg = BuildConfig(
        sources=source, captioner=captioner, teacher=teacher, out=out, base_url=join_urls(base_url, "--base-url"),
        captioner_base_url=join_urls(captioner_base_url, "--captioner-base-url"),
        teacher_base_url=join_urls(teacher_base_url, "--teacher-base-url"), api_key_env=api_key_env,
        judge=judge, judge_model=judge_model, judge_base_url=join_urls(judge_base_url, "--judge-base-url"),
        consistency_model=consistency_model,
        policy=policy, limit=limit, concurrency=concurrency, caption_max_tokens=caption_max_tokens,
        teacher_max_tokens=teacher_max_tokens, teacher_temperature=teacher_temperature,
        bounds=Bounds(min_thought_words=min_thought_words, max_thought_words=max_thought_words),
        minhash=minhash, copy_images=copy_images, llavacot=llavacot, name=name, as_released=as_released)
    stats = _build_with_progress(cfg, quiet)
    _print_build(stats, out)


def _build_with_progress(cfg, quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..data.build import run_build

    if quiet:
        return run_build(cfg)
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=_console()) as progress:
        tasks: dict[str, int] = {}

        def advance(stage: str, n: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.advance(tasks[stage], n)

        return run_build(cfg, on_progress=advance)


def _print_build(stats: dict, out: Path) -> None:
    from rich.console import Console

    c = stats["counts"]
    console = Console(soft_wrap=True)
    console.print(f"[bold]{c['kept']}[/bold] rows kept, {c['rejected']} rejected of {c['seeds']} seeds "
                  f"({stats['requests']} requests this run)")
    for reason, n in sorted(stats["rejected_by_reason"].items(), key=lambda kv: -kv[1]):
        console.print(f"  rejected {reason}: {n}")
    if stats.get("as_released"):
        console.print("as released: no model asked, nothing filtered but unusable inputs")
    else:
        console.print(f"policy {stats['policy']['name']} v{stats['policy']['version']} "
                      f"sha256 {stats['policy']['sha256'][:16]}...")
    console.print(f"written: {out}/tis.json, dataset_info.json, trl/, rejected.jsonl, stats.json, README.md")


def validate_cmd(
    path: Annotated[Path, typer.Argument(help="ShareGPT or TRL file (.json array or .jsonl).")],
    image_root: Annotated[Optional[Path], typer.Option(help="Folder relative image paths start from "
                                                            "(default: the file's folder).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="auto | sharegpt | trl")] = "auto",
    json_out: Annotated[Optional[Path], typer.Option("--json", help="Write the full report as JSON here.")] = None,
    show: Annotated[int, typer.Option(help="Problems listed per code.")] = 5,
) -> None:
    """Check a training file against LLaMA-Factory / TRL rules; count known quirks.

    Exits 1 when errors are found (quirks alone exit 0).
    """
    from ..data.validate import validate_file

    report = validate_file(path, image_root, fmt)
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    _print_report(report, show)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report, show: int) -> None:
    from rich.console import Console

    console = Console(soft_wrap=True)
    console.print(f"{report.path}: {report.rows} rows ({report.format})")
    for title, problems, style in (("errors", report.errors, "red"), ("quirks", report.quirks, "yellow")):
        counts = report.counts(problems)
        console.print(f"[{style}]{title}[/{style}]: " + (", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                                                         or "none"))
        for code in sorted(counts):
            listed = [p for p in problems if p.code == code][:show]
            for p in listed:
                console.print(f"  row {p.row}: {code}: {p.message}", markup=False)


def convert_cmd(
    path: Annotated[Path, typer.Argument(help="ShareGPT or TRL file (.json or .jsonl).")],
    to: Annotated[str, typer.Option(help="llavacot | trl | sharegpt")],
    out: Annotated[Path, typer.Option(help="Output: a file (.json for sharegpt/llavacot) or, for trl, a folder.")],
    image_root: Annotated[Optional[Path], typer.Option(help="Root of relative image paths (default: the input's "
                                                            "folder).")] = None,
) -> None:
    """Convert between ShareGPT (LLaMA-Factory), TRL and LLaVA-CoT layouts."""
    from ..data.export import read_records, sharegpt_to_trl, to_llavacot, trl_to_sharegpt, write_json, write_trl

    records = read_records(path)
    sharegpt = [trl_to_sharegpt(r) if "messages" in r and "conversations" not in r else r for r in records]
    if to == "trl":
        written = write_trl([sharegpt_to_trl(r) for r in sharegpt], out, image_root or path.parent)
        _console().print(f"{written['rows']} rows -> {written['jsonl']}"
                         + (f" (HF copy skipped: {written['hf_skipped']})" if "hf_skipped" in written else
                            f", {written['hf']}, {written['parquet']}"))
    elif to in ("sharegpt", "llavacot"):
        rows = [to_llavacot(r) for r in sharegpt] if to == "llavacot" else sharegpt
        write_json(out, rows)
        _console().print(f"{len(rows)} rows -> {out}")
    else:
        raise UsageError(f"--to must be llavacot, trl or sharegpt (got {to!r})")
