"""``thinksafe baselines``: fine-tune one base model on each baseline set with the same budget, then compare."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..errors import UsageError

Opt = typer.Option


def baselines_cmd(
    out: Annotated[Path, Opt(help="Folder for the data, adapters, study and recipe.md (re-running resumes).")],
    base: Annotated[Optional[str], Opt(help="hf/PATH_OR_HUB_ID of the base reasoning model.")] = None,
    source: Annotated[Optional[list[str]], Opt(help="NAME=KIND:PATH[?opts], a `thinksafe data build` source, e.g. "
                                                    "vlguard=vlguard:train.json, spavl=spavl:DIR?reference=chosen, "
                                                    "mis=mis:mis_train.json, tis=tis:train_data.json. Repeat.")] = None,
    rows: Annotated[Optional[int], Opt(help="Rows per set, drawn at random (the same for every set).")] = None,
    steps: Annotated[Optional[int], Opt(help="Optimizer steps per set (the same for every set).")] = None,
    seed: Annotated[int, Opt(help="Seed of the row draw and of training.")] = 0,
    train_config: Annotated[Optional[Path], Opt(help="YAML of `thinksafe train` options shared by every run "
                                                     "(method, lr, batch_size, grad_accum, lora_r...).")] = None,
    benchmark: Annotated[Optional[list[str]], Opt(help="Benchmarks or presets to evaluate on (default tis-paper, "
                                                       "mis, capability). Repeat.")] = None,
    data_dir: Annotated[Optional[Path], Opt(help="Benchmark data root: DATA/<benchmark> (default: downloads).")] = None,
    judge: Annotated[Optional[str], Opt(help="Judge for every benchmark (default: each benchmark's own).")] = None,
    judge_model: Annotated[Optional[str], Opt(help="Judge model, e.g. openai/gpt-4o-mini.")] = None,
    judge_base_url: Annotated[Optional[str], Opt(help="Server of the judge model.")] = None,
    limit: Annotated[Optional[int], Opt(help="First N samples of every benchmark.")] = None,
    max_tokens: Annotated[int, Opt(help="Generation limit of every model.")] = 4096,
    device: Annotated[Optional[str], Opt(help="Device of the evaluated models (cuda, cpu...).")] = None,
    dtype: Annotated[Optional[str], Opt(help="dtype of the evaluated models (bfloat16...).")] = None,
    batch_size: Annotated[int, Opt(help="Evaluation batch size of the local models.")] = 8,
    stand_in: Annotated[bool, Opt("--stand-in", help="Offline: the tiny random model and generated slices of each "
                                                     "source's format (shows the mechanism only).")] = False,
) -> None:
    """Fine-tune one base model on each baseline set (VLGuard, SPA-VL, MIS, TiS) with the same rows and
    steps, evaluate them all and write the comparison with its safety / capability trade-off."""
    from rich.console import Console

    from ..train import baselines as bl
    from ..train.config import read_yaml

    err = Console(stderr=True)
    echo = lambda line: err.print(line, highlight=False)  # noqa: E731
    if stand_in:
        offline()
        recipe = bl.stand_in(out, **{k: v for k, v in (("rows", rows), ("steps", steps)) if v}, seed=seed)
    else:
        if not base or not source or not rows or not steps:
            raise UsageError("--base, --source, --rows and --steps are required (or --stand-in)")
        study: dict = {"generation": {"max_tokens": max_tokens}}
        if data_dir:
            study["data"] = str(data_dir.resolve())
        if judge or judge_model:
            study["judge"] = {k: v for k, v in (("spec", judge), ("model", judge_model),
                                                ("base_url", judge_base_url)) if v}
        if limit:
            study["limit"] = limit
        keys = {k: v for k, v in (("device", device), ("dtype", dtype), ("batch_size", batch_size)) if v}
        recipe = bl.Recipe(base=base, out=out, sources=_sources(source), rows=rows, steps=steps, seed=seed,
                           train=read_yaml(train_config) if train_config else {},
                           benchmarks=list(benchmark or ["tis-paper", "mis", "capability"]), study=study,
                           model_keys=keys)
    result = bl.run_recipe(recipe, echo=echo)
    console = Console()
    console.print((out / "recipe.md").read_text(encoding="utf-8"), markup=False, highlight=False)
    console.print(f"written: {out}/recipe.md, recipe.json, study.yaml, study/ (study.md, study.json, report.html)",
                  highlight=False)
    if result["failures"]:
        console.print(f"[red]{len(result['failures'])} run(s) not done[/red]: see {out}/study/study.md")
        raise typer.Exit(1)


def _sources(specs: list[str]) -> dict[str, str]:
    out = {}
    for spec in specs:
        name, sep, rest = spec.partition("=")
        if not sep or not name or ":" not in rest:
            raise UsageError(f"--source {spec!r} must look like NAME=KIND:PATH (e.g. mis=mis:mis_train.json)")
        if name in out:
            raise UsageError(f"--source: two sets are named {name!r}")
        out[name] = rest
    return out


def offline() -> None:
    """Everything is local: make sure nothing tries a model hub. Library deprecation
    notices (transformers 5 renames) are noise in a demo."""
    import os
    import warnings

    for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        os.environ.setdefault(key, "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    warnings.filterwarnings("ignore", category=FutureWarning)


def register(app: typer.Typer) -> None:
    """Add ``thinksafe baselines`` to the main app."""
    app.command("baselines")(baselines_cmd)
