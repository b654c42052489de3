"""The ``thinksafe`` command. Each command parses options and calls the library;
heavy imports happen inside the commands so API-only paths start fast.

Errors are handled in one place, :class:`Commands`: a
:class:`~thinksafe.errors.UserError` from any command is printed as one line
(exit status 2); any other exception is a bug and keeps its traceback, which
ends with a hint to report it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from ..errors import UserError

BUG_HINT = ("thinksafe {version}: this is a bug in thinksafe, not a mistake in your input; "
            "please report it with the traceback above")


class Commands(TyperGroup):
    """The root command group: turns a UserError into one line and exit 2, and
    marks every other exception as a bug."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError as exc:
            from rich.console import Console
            from rich.markup import escape

            Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(str(exc))}", highlight=False)
            raise typer.Exit(2) from None
        except (typer.Exit, typer.Abort):
            raise  # a command's chosen exit
        except Exception as exc:
            # click's own usage errors pass here too; it prints them without a
            # traceback, so they never show the note.
            from ..runinfo import package_versions

            exc.add_note(BUG_HINT.format(version=package_versions()["thinksafe"] or "(not installed)"))
            raise


app = typer.Typer(cls=Commands, add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="Safety evaluation, safety-thinking data and fine-tuning for multimodal reasoning models.")

# Command groups living in their own modules; each defines register(app).
_COMMAND_MODULES = ("benchmarks", "models", "study", "compare", "report", "judge", "data", "train", "demo",
                    "baselines")


URLS_HELP = ("OpenAI-compatible server URL, e.g. http://host:8000/v1. Several servers of the same model: repeat "
             "the option or comma-separate; each request goes to the least busy one.")


def join_urls(values: Optional[list[str]], flag: str) -> Optional[str]:
    """Repeated and comma-separated server URLs as one comma-separated string (None: not given)."""
    from ..errors import UserError
    from ..models.fleet import split_urls

    try:
        return ",".join(split_urls(values)) or None
    except UserError as exc:
        raise UserError(f"{flag}: {exc}") from exc


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _preload(module: str) -> None:
    """Import ``module`` in a background thread. For the HTTP client this cuts start-up by about 0.1 s
    (measured): its import, mostly loading the system's CA certificates, overlaps the rest of start-up."""
    import importlib
    import threading

    threading.Thread(target=importlib.import_module, args=(module,), name=f"preload:{module}", daemon=True).start()


@app.command("eval")
def eval_cmd(
    ctx: typer.Context,
    benchmark: Annotated[str, typer.Option(help="Benchmark name or preset (see `thinksafe benchmarks`).")],
    model: Annotated[str, typer.Option(help="openai/NAME (with --base-url), hf/PATH_OR_HUB_ID, or a registry name "
                                            "(`thinksafe models`: its card's settings apply; your flags win).")],
    out: Annotated[Path, typer.Option(help="Run folder (created; re-running resumes).")],
    subset: Annotated[Optional[str], typer.Option(help="Benchmark subset, e.g. full|tiny for FigStep.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Benchmark data folder (default: download).")] = None,
    base_url: Annotated[Optional[list[str]], typer.Option(help=URLS_HELP)] = None,
    api_key_env: Annotated[str, typer.Option(help="Environment variable holding the API key.")] = "OPENAI_API_KEY",
    concurrency: Annotated[int, typer.Option(help="Requests in flight (openai/ models), all servers together; "
                                                 "lowered while servers answer 429/503.")] = 16,
    timeout: Annotated[float, typer.Option(help="Per-request timeout in seconds.")] = 600.0,
    batch_size: Annotated[int, typer.Option(help="Batch size (hf/ models).")] = 8,
    adapter: Annotated[Optional[str], typer.Option(help="LoRA adapter folder for hf/ models.")] = None,
    trust_remote_code: Annotated[bool, typer.Option(help="Allow model code from the hub (hf/).")] = False,
    device: Annotated[Optional[str], typer.Option(help="Device for hf/ models (default: cuda if available).")] = None,
    dtype: Annotated[Optional[str], typer.Option(help="Weights dtype for hf/ models (bfloat16, float32...).")] = None,
    max_tokens: Annotated[int, typer.Option(help="Max new tokens (allow room for long thinking).")] = 4096,
    temperature: Annotated[float, typer.Option(help="0 = greedy.")] = 0.0,
    top_p: Annotated[float, typer.Option()] = 1.0,
    seed: Annotated[int, typer.Option()] = 0,
    system: Annotated[Optional[str], typer.Option(help="System prompt for every sample.")] = None,
    think_budget: Annotated[Optional[int], typer.Option(help="hf/: force-close the thinking after N tokens.")] = None,
    no_think: Annotated[bool, typer.Option(help="hf/: prefill an empty <think></think>.")] = False,
    judge: Annotated[Optional[str], typer.Option(
        help="refusal | llm[:trace|:policy@N] | guard | ensemble:J1,J2 | official (default: the benchmark's own)."
    )] = None,
    judge_model: Annotated[Optional[str], typer.Option(help="Judge model spec, e.g. openai/gpt-4o-mini.")] = None,
    judge_base_url: Annotated[Optional[list[str]], typer.Option(help="Judge server URL(s), like --base-url.")] = None,
    judge_api_key_env: Annotated[str, typer.Option(help="Environment variable with the judge's key.")] = "OPENAI_API_KEY",
    judge_concurrency: Annotated[Optional[int], typer.Option(help="Judge requests in flight.")] = None,
    protocol: Annotated[str, typer.Option(
        help="official: each benchmark's own judge and metric | harmonised: one generic judge on --judge-model "
             "(required) and the ASR metric for every benchmark.")] = "official",
    strict: Annotated[bool, typer.Option(help="Stop at the first bad benchmark row or image.")] = False,
    limit: Annotated[Optional[int], typer.Option(help="Only the first N samples.")] = None,
    accept_changed_data: Annotated[bool, typer.Option(
        help="Go on in a run folder whose benchmark files changed since its last run.")] = False,
    quiet: Annotated[bool, typer.Option(help="No progress bar.")] = False,
    registry: Annotated[Optional[Path], typer.Option(help="Your own model registry YAML (merged over the built-in one).")] = None,
) -> None:
    """Evaluate a model on a benchmark; judge thinking, answer and full output separately."""
    if not model.startswith("hf/"):
        _preload("aiohttp")
    from ..evaluate import EvalConfig
    from ..models.base import GenerationSettings
    from .run import run_with_progress

    extra: dict = {}
    if think_budget is not None:
        extra["think_budget"] = think_budget
    if no_think:
        extra["no_think"] = True
    settings = GenerationSettings(max_tokens=max_tokens, temperature=temperature, top_p=top_p, seed=seed,
                                  system=system, extra=extra)
    from ..models.registry import explicit_params, resolve_model

    resolved = resolve_model(model, settings, explicit=explicit_params(ctx), base_url=join_urls(base_url, "--base-url"),
                             registry_file=registry)
    for note in resolved.notes:
        _console().print(f"[yellow]note:[/yellow] {note}", highlight=False)
    cfg = EvalConfig(benchmark=benchmark, model=resolved.spec, out=out, subset=subset, data=data, judge=judge,
                     judge_model=judge_model, judge_base_url=join_urls(judge_base_url, "--judge-base-url"),
                     judge_api_key_env=judge_api_key_env, judge_concurrency=judge_concurrency, protocol=protocol,
                     base_url=join_urls(base_url, "--base-url"),
                     api_key_env=api_key_env, concurrency=concurrency, timeout_s=timeout, batch_size=batch_size,
                     adapter=adapter, trust_remote_code=trust_remote_code, device=device, dtype=dtype,
                     settings=resolved.settings, strict=strict, limit=limit, registry_entry=resolved.record,
                     accept_changed_data=accept_changed_data)
    run_with_progress(cfg, quiet=quiet)


@app.command("tiny-model")
def tiny_model_cmd(out: Annotated[Path, typer.Option(help="Folder for the model.")],
                   arch: Annotated[str, typer.Option(
                       help="llava | qwen2_vl | qwen2_5_vl | qwen3_vl | mllama | llava_onevision | glm4v.")] = "llava",
                   seed: Annotated[int, typer.Option()] = 0) -> None:
    """Build a tiny random test VLM of a real architecture, offline. Its outputs are meaningless."""
    from ..models.tiny import ARCHES, build_tiny_model

    if arch not in ARCHES:
        raise typer.BadParameter(f"unknown architecture {arch!r}; choose one of {', '.join(ARCHES)}", param_hint="--arch")
    path = build_tiny_model(out, seed=seed, arch_name=arch)
    _console().print(f"tiny {arch} model written to {path} (random weights: a test stand-in, its outputs mean nothing)")


def _register_modules() -> None:
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__package__}.{name}":
                continue
            raise
        module.register(app)


_register_modules()
