"""Running many evaluations: one run folder each, models behind different
servers at the same time, and a failure in one never stopping the others.

Used by ``thinksafe study`` (models x benchmarks) and by benchmark presets
(``thinksafe eval --benchmark tis-paper``). Each job is an ordinary
``run_eval`` into its own folder, so each is resumable on its own; jobs that
share an endpoint run one after the other (the server is the bottleneck), jobs
on different endpoints run in parallel threads.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..evaluate import EvalConfig

# Config keys that change how fast a run goes, not what it produces: a change in
# them does not make a finished run "changed" (the fingerprints ignore them too).
OPERATIONAL = ("concurrency", "timeout_s", "batch_size", "judge_concurrency", "api_key_env", "judge_api_key_env",
               "base_url", "judge_base_url", "strict")


@dataclass
class Job:
    model: str
    """The study's name for the model ("" for a preset)."""
    benchmark: str
    cfg: EvalConfig

    @property
    def endpoint(self) -> str:
        """Jobs with the same endpoint run one after another."""
        return (self.cfg.base_url or "default") if self.cfg.model.startswith("openai/") else "local"

    @property
    def label(self) -> str:
        return f"{self.model} x {self.benchmark}" if self.model else self.benchmark


@dataclass
class SampleSummary:
    n: int = 0
    input_errors: int = 0
    """Samples whose input was bad (missing image, malformed row): recorded, never sent."""
    gen_errors: int = 0
    """Samples whose generation failed after retries: a rerun tries them again."""
    first_error: str | None = None


@dataclass
class Outcome:
    job: Job
    status: str
    """``done`` | ``partial`` (some generations failed) | ``failed`` (nothing usable)."""
    ran: bool
    """Whether this invocation ran the job (False: it was already done)."""
    samples: SampleSummary
    error: str | None = None
    seconds: float = 0.0
    metrics: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        s = self.samples
        return {"model": self.job.model, "benchmark": self.job.benchmark, "dir": str(self.job.cfg.out),
                "status": self.status, "ran": self.ran, "n": s.n, "input_errors": s.input_errors,
                "generation_errors": s.gen_errors, "error": self.error, "seconds": round(self.seconds, 3)}


# ---- state of a run folder -------------------------------------------------------------

def _normalise(config: dict[str, Any]) -> dict[str, Any]:
    d = json.loads(json.dumps(config, default=str))
    return {k: v for k, v in d.items() if k not in OPERATIONAL}


def summarize_samples(path: Path) -> SampleSummary:
    """Count samples and errors in a samples.jsonl (streamed).

    A row with an error and ``raw`` null never reached the model (bad input);
    with ``raw`` set (possibly empty) the model was asked and failed.
    """
    s = SampleSummary()
    with open(path, encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            s.n += 1
            if row.get("error"):
                if row.get("raw") is None:
                    s.input_errors += 1
                else:
                    s.gen_errors += 1
                s.first_error = s.first_error or f"{row.get('id')}: {row['error']}"
    return s


def _verdict(s: SampleSummary) -> tuple[str, str | None]:
    if s.n == 0:
        return "failed", "the benchmark yielded no samples"
    if s.input_errors + s.gen_errors == s.n:
        return "failed", f"all {s.n} samples failed, e.g. {s.first_error}"
    if s.gen_errors:
        return "partial", f"{s.gen_errors} of {s.n} generations failed (a rerun retries them), e.g. {s.first_error}"
    return "done", None


def folder_state(cfg: EvalConfig) -> tuple[str, str, SampleSummary | None]:
    """``(state, detail, samples)`` of a job's folder, from its files alone.

    States: ``todo`` (never started), ``changed`` (run with other settings),
    ``interrupted`` (started, no results written since), ``failed``,
    ``partial`` or ``done`` (see :class:`Outcome`).
    """
    out = Path(cfg.out)
    run_json, metrics = out / "run.json", out / "metrics.json"
    if not run_json.is_file():
        return "todo", "not started", None
    if _normalise(json.loads(run_json.read_text()).get("config", {})) != _normalise(cfg.to_dict()):
        return "changed", "settings differ from the last run", None
    samples = out / "samples.jsonl"
    if not metrics.is_file() or not samples.is_file() or metrics.stat().st_mtime_ns < run_json.stat().st_mtime_ns:
        return "interrupted", "started, not finished", None
    summary = summarize_samples(samples)
    status, why = _verdict(summary)
    return status, why or f"{summary.n} samples", summary


# ---- endpoints ----------------------------------------------------------------------------

def check_endpoint(base_url: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 10.0) -> str | None:
    """None when something answers (any HTTP status) at ``base_url`` -- at any
    one of its URLs when it lists several (a fleet, comma-separated) -- else why not."""
    from ..models.fleet import split_urls

    urls = split_urls(base_url)
    reasons = []
    for url in urls:
        reason = _check_one(url, api_key_env, timeout)
        if reason is None:
            return None
        reasons.append(reason)
    return "; ".join(reasons) or f"no server URL in {base_url!r}"


def _check_one(base_url: str, api_key_env: str, timeout: float) -> str | None:
    import os

    request = urllib.request.Request(base_url.rstrip("/") + "/models")
    key = os.environ.get(api_key_env)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout):
            return None
    except urllib.error.HTTPError:
        return None  # it answered; a 401/404 here says nothing about chat completions
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"endpoint {base_url} is unreachable ({reason})"


# ---- running --------------------------------------------------------------------------------

def _error_text(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"


def run_job(job: Job, on_progress: Callable[[int, int | None], None] | None = None) -> Outcome:
    """Run one job; an exception becomes a ``failed`` outcome (a bug's traceback
    is kept in the run folder's ``error.txt``)."""
    from ..evaluate import run_eval

    start = time.perf_counter()
    out = Path(job.cfg.out)
    try:
        metrics = run_eval(job.cfg, on_progress=on_progress)
    except Exception as exc:  # noqa: BLE001 - one job must not stop the others
        out.mkdir(parents=True, exist_ok=True)
        if not isinstance(exc, UserError):
            (out / "error.txt").write_text(traceback.format_exc())
        return Outcome(job, "failed", True, SampleSummary(), _error_text(exc), time.perf_counter() - start)
    (out / "error.txt").unlink(missing_ok=True)
    summary = summarize_samples(out / "samples.jsonl")
    status, why = _verdict(summary)
    return Outcome(job, status, True, summary, why, time.perf_counter() - start, metrics)


class _Display:
    """Progress bars (one per running job) and a line per finished job."""

    def __init__(self, quiet: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = None if quiet else Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
            console=self.console, transient=True)

    def __enter__(self) -> _Display:
        if self.progress:
            self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress:
            self.progress.stop()

    def tracker(self, job: Job) -> tuple[Callable[[int, int | None], None] | None, Callable[[], None]]:
        if self.progress is None:
            return None, lambda: None
        progress = self.progress
        task = progress.add_task(job.label, total=None)
        sized = []

        def advance(n: int, total: int | None) -> None:
            if total and not sized:
                sized.append(total)
                progress.update(task, total=total)
            progress.advance(task, n)

        return advance, lambda: progress.remove_task(task)

    def finished(self, o: Outcome) -> None:
        style = {"done": "green", "partial": "yellow", "failed": "red"}[o.status]
        if o.ran:
            what = f"{o.status} in {o.seconds:.1f} s"
        else:
            what = "already done" if o.status == "done" else o.status
        note = f": {o.error}" if o.error else ""
        self.console.print(f"[{style}]{o.job.label}[/{style}] {what}{note}", highlight=False)


def _run_group(jobs: list[Job], display: _Display, skip_done: bool) -> list[Outcome]:
    outcomes = []
    down: str | None = None
    states = {id(j): folder_state(j.cfg) for j in jobs} if skip_done else {}
    pending = [j for j in jobs if not skip_done or states[id(j)][0] != "done"]
    first = jobs[0].cfg
    if pending and first.model.startswith("openai/") and first.base_url:
        down = check_endpoint(first.base_url, first.api_key_env)
    for job in jobs:
        if job not in pending:
            state, _, summary = states[id(job)]
            outcome = Outcome(job, state, False, summary or SampleSummary())
        elif down:
            outcome = Outcome(job, "failed", False, SampleSummary(), down)
        else:
            advance, done = display.tracker(job)
            try:
                outcome = run_job(job, advance)
            finally:
                done()
        display.finished(outcome)
        outcomes.append(outcome)
    return outcomes


def run_jobs(jobs: list[Job], quiet: bool = False, skip_done: bool = True) -> list[Outcome]:
    """Run every job, endpoints in parallel; outcomes in the jobs' order.

    Args:
        jobs: The evaluations; jobs sharing an endpoint run one after another.
        quiet: No progress bars (a line per finished job is still printed).
        skip_done: Leave finished folders alone (run with the same settings,
            nothing failed); a finished job then makes no request at all.
    """
    groups: dict[str, list[Job]] = {}
    for job in jobs:
        groups.setdefault(job.endpoint, []).append(job)
    results: list[list[Outcome] | BaseException] = []
    with _Display(quiet) as display:
        def work(group: list[Job]) -> None:
            try:
                results.append(_run_group(group, display, skip_done))
            except BaseException as exc:  # re-raised below, in the main thread
                results.append(exc)

        # Daemon threads: Ctrl-C ends the process at once; every finished result is already committed.
        threads = [threading.Thread(target=work, args=(g,), daemon=True) for g in groups.values()]
        for t in threads:
            t.start()
        for t in threads:
            while t.is_alive():
                t.join(0.2)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    by_job = {id(o.job): o for group in results for o in group}  # type: ignore[union-attr]
    return [by_job[id(j)] for j in jobs]
