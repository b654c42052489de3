"""Run a benchmark against a model: generate, split, judge, store, report.

The pipeline streams: a producer loads samples one by one into a bounded
queue, generation workers keep the model busy (``concurrency`` requests in
flight), judge workers judge each finished generation, and every result is
committed to the store as it arrives. Re-running the same command on the same
folder does only the work that is missing.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from .benchmarks import Benchmark, Result, get_benchmark
from .errors import UserError
from .judges import Judge, make_judge, run_judge_spec
from .judges.process import JudgeProcess
from .models import Backend, BackendError, GenerationSettings, check_spec, get_backend, sample_messages
from .models.base import Message
from .models.fingerprint import backend_fingerprint
from .reasoning import parse_completion, target_text
from .records import MISSING, Generation, Judgment, Sample, fingerprint
from .runinfo import check_benchmark_files, write_run_json
from .store import Store
from .store.sqlite import generation_id

T = TypeVar("T")

JUDGE_PROCESS_AT = 64
"""With this many requests in flight or more, a local judge (rules) runs in a worker process."""
JUDGE_BATCH = 64
"""Samples per round trip to that process."""


@dataclass
class EvalConfig:
    """Everything a run needs; saved in ``run.json`` (it holds no secrets)."""

    benchmark: str
    model: str
    out: Path
    subset: str | None = None
    data: Path | None = None
    judge: str | None = None
    """None: the benchmark's default judge, or the harmonised one (:func:`~thinksafe.judges.run_judge_spec`)."""
    judge_model: str | None = None
    judge_base_url: str | None = None
    judge_api_key_env: str = "OPENAI_API_KEY"
    judge_concurrency: int | None = None
    protocol: str = "official"
    """``official`` or ``harmonised`` (one generic judge and the ASR metric for every benchmark)."""
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 16
    timeout_s: float = 600.0
    batch_size: int = 8
    adapter: str | None = None
    trust_remote_code: bool = False
    device: str | None = None
    dtype: str | None = None
    settings: GenerationSettings = field(default_factory=GenerationSettings)
    strict: bool = False
    limit: int | None = None
    judge_only: bool = False
    """Judge stored generations only (``thinksafe judge``): never call the model."""
    registry_entry: dict[str, Any] | None = None
    """What a registry name in ``--model`` applied (see :func:`thinksafe.models.registry.resolve_model`)."""
    accept_changed_data: bool = False
    """Go on in a run folder whose benchmark files changed since its last run."""

    def backend_options(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "api_key_env": self.api_key_env, "concurrency": self.concurrency,
                "timeout_s": self.timeout_s, "adapter": self.adapter, "batch_size": self.batch_size,
                "trust_remote_code": self.trust_remote_code, "device": self.device, "dtype": self.dtype}

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["out"], d["data"] = str(self.out), str(self.data) if self.data else None
        return d


@dataclass
class RunStats:
    samples: int = 0
    generated: int = 0
    judged: int = 0
    gen_errors: int = 0
    judge_requests: int = 0
    seconds: float = 0.0
    model: dict[str, Any] = field(default_factory=dict)
    """The model backend's counters: requests, retries, in-flight limit (final, lowest), endpoints."""
    judge_model: dict[str, Any] = field(default_factory=dict)
    changed_files: list[str] = field(default_factory=list)
    """Benchmark files that changed since the folder's last run (with ``accept_changed_data``)."""


class _LazyBackend:
    """Builds the model only when some sample needs generating, so a finished
    run (and report-only work) never loads weights or opens connections."""

    def __init__(self, factory: Callable[[], Backend]):
        self._factory = factory
        self._backend: Backend | None = None
        self._lock = threading.Lock()

    def get_sync(self) -> Backend:
        """The backend, built on first use (from any thread)."""
        with self._lock:
            if self._backend is None:
                self._backend = self._factory()
            return self._backend

    async def get(self) -> Backend:
        if self._backend is not None:
            return self._backend
        return await asyncio.to_thread(self.get_sync)

    def stats(self) -> dict[str, Any]:
        return self._backend.stats() if self._backend is not None else {}

    async def aclose(self) -> None:
        if self._backend is not None:
            await self._backend.aclose()


class Evaluation:
    """One benchmark x one model x one judge, in one run folder."""

    def __init__(self, cfg: EvalConfig, on_progress: Callable[[int, int | None], None] | None = None):
        self.cfg = cfg
        if not cfg.judge_only:
            check_spec(cfg.model)  # a bad --model fails here, before anything is written
        self.out = Path(cfg.out)
        self.bench: Benchmark = get_benchmark(cfg.benchmark)(
            data=cfg.data, subset=cfg.subset, workdir=self.out, strict=cfg.strict, protocol=cfg.protocol,
            limit=cfg.limit)
        self.gen_key = fingerprint({"model": backend_fingerprint(cfg.model, cfg.backend_options()),
                                    "settings": cfg.settings.to_dict()})
        self.judge_spec = run_judge_spec(cfg.judge, self.bench, cfg.protocol, cfg.judge_model)
        self.judge: Judge = make_judge(self.judge_spec, self.bench, model=cfg.judge_model, base_url=cfg.judge_base_url,
                                       api_key_env=cfg.judge_api_key_env, concurrency=cfg.judge_concurrency,
                                       protocol=cfg.protocol)
        self.judge_key = self.judge.fingerprint
        self.out.mkdir(parents=True, exist_ok=True)  # only once every option is known to work
        self.store = Store(self.out / "store.sqlite")
        self.backend = _LazyBackend(lambda: get_backend(cfg.model, **cfg.backend_options()))
        self.stats = RunStats()
        self.on_progress = on_progress
        self._total = self.bench.describe()["subsets"].get(self.bench.subset or "")
        self._seq = 0

    # ---- the pipeline --------------------------------------------------------------
    async def run(self) -> dict[str, Any]:
        start = time.perf_counter()
        self.stats.changed_files = check_benchmark_files(self.out, self.bench, self.cfg.accept_changed_data)
        self.store.register_judge(self.judge_key, self.judge.name, self.judge.fingerprint_config())
        write_run_json(self.out, self.cfg.to_dict(), self.bench, self.gen_key, self.judge_key, self.judge,
                       self.judge_spec)
        self.store.clear_samples(self.bench.name)
        try:
            await self._pipeline()
        finally:
            self.stats.model = self.backend.stats()
            judge_backend = getattr(self.judge, "backend", None)
            self.stats.judge_model = judge_backend.stats() if judge_backend is not None else {}
            await self.backend.aclose()
            await self.judge.aclose()
        self.stats.seconds = time.perf_counter() - start
        metrics = self.write_results()
        self.store.set_meta("last_stats", asdict(self.stats))
        tmp = self.out / "stats.json.tmp"
        tmp.write_text(json.dumps(asdict(self.stats), indent=2))
        tmp.replace(self.out / "stats.json")
        return metrics

    async def _pipeline(self) -> None:
        gen_workers = self._gen_concurrency()
        judge_workers = max(1, self.judge.concurrency)
        # Each queued request holds its encoded images: room for one loader batch beyond the workers.
        gen_q: asyncio.Queue = asyncio.Queue(maxsize=max(gen_workers, 64))
        judge_q: asyncio.Queue = asyncio.Queue(maxsize=2 * judge_workers)
        gens = [asyncio.create_task(self._gen_worker(gen_q, judge_q)) for _ in range(gen_workers)]
        process = None
        if self.judge.local and gen_workers >= JUDGE_PROCESS_AT:
            process = JudgeProcess(self.judge)
            judges = [asyncio.create_task(self._judge_batches(judge_q, process)) for _ in range(2)]
        else:
            judges = [asyncio.create_task(self._judge_worker(judge_q)) for _ in range(judge_workers)]
        drained = asyncio.create_task(self._drain(gen_q, judge_q))
        try:
            # Workers run until cancelled: one that ends has failed, and its error ends the run.
            await asyncio.wait([drained, *gens, *judges], return_when=asyncio.FIRST_COMPLETED)
            for task in gens + judges:
                if task.done():
                    raise task.exception() or RuntimeError("a pipeline worker stopped")
            await drained
        finally:
            for t in (drained, *gens, *judges):
                t.cancel()
            await asyncio.gather(drained, *gens, *judges, return_exceptions=True)
            if process is not None:
                process.close()

    async def _drain(self, gen_q: asyncio.Queue, judge_q: asyncio.Queue) -> None:
        error: UserError | None = None
        try:
            await self._produce(gen_q, judge_q)
        except UserError as exc:  # a file unreadable from some row on: finish the rows before it
            error = exc
        await gen_q.join()
        await judge_q.join()
        if error is not None:
            raise error

    def _gen_concurrency(self) -> int:
        if self.cfg.model.startswith("hf/"):
            return 2 * max(1, self.cfg.batch_size)  # keeps the next batch ready
        return max(1, self.cfg.concurrency)

    async def _produce(self, gen_q: asyncio.Queue, judge_q: asyncio.Queue) -> None:
        async for sample, stored, request in prefetch(self.bench.samples(), self._intake):
            self.stats.samples += 1
            if sample.error:
                self._progress()
            elif self.cfg.judge_only and (stored is None or stored.error):
                self._progress()  # nothing stored to judge; the model is not called
            elif stored is None or stored.error:
                await gen_q.put((sample, request))
            else:
                await judge_q.put((sample, stored, None))

    def _intake(self, chunk: list[Sample]) -> list[tuple[Sample, Generation | None, list[Message] | None]]:
        """In the loader thread: record a chunk of loaded samples, look up their stored
        generations, and get the requests of the others ready (:meth:`Backend.prepare`)."""
        self.store.put_samples(chunk, self._seq)
        self._seq += len(chunk)
        out = []
        for sample in chunk:
            stored = None if sample.error else self.store.get_generation(self.gen_key, sample)
            request = None
            if not (sample.error or self.cfg.judge_only) and (stored is None or stored.error):
                request = self.backend.get_sync().prepare(sample_messages(sample, self.cfg.settings.system),
                                                          self.cfg.settings)
            out.append((sample, stored, request))
        return out

    async def _gen_worker(self, gen_q: asyncio.Queue, judge_q: asyncio.Queue) -> None:
        while True:
            sample, request = await gen_q.get()
            try:
                gen = await self._generate(sample, request)
                # Replaces an earlier (failed or changed) generation and every judge's verdicts on it.
                gen_id = self.store.put_generation(self.gen_key, sample, gen)
                await judge_q.put((sample, gen, gen_id))
            finally:
                gen_q.task_done()

    async def _generate(self, sample: Sample, request: list[Message] | None = None) -> Generation:
        backend = await self.backend.get()
        settings = self.cfg.settings
        try:
            completion = await backend.complete(request or sample_messages(sample, settings.system), settings)
        except BackendError as exc:
            self.stats.gen_errors += 1
            return Generation(error=str(exc))
        except OSError as exc:  # e.g. an image that vanished after loading
            self.stats.gen_errors += 1
            return Generation(error=f"{type(exc).__name__}: {exc}")
        self.stats.generated += 1
        return parse_completion(completion)

    async def _judge_worker(self, judge_q: asyncio.Queue) -> None:
        while True:
            sample, gen, gen_id = await judge_q.get()
            try:
                await self._judge_sample(sample, gen, gen_id)
                self._progress()
            finally:
                judge_q.task_done()

    async def _judge_sample(self, sample: Sample, gen: Generation, gen_id: str | None = None) -> None:
        """Judge every target not judged yet, storing each verdict as it comes."""
        gen_id, given, asks = self._plan(sample, gen, gen_id)
        self.store.put_judgments(self.judge_key, self.gen_key, sample, gen_id, given)
        for target, text in asks:
            self.stats.judge_requests += 1
            judgment = await self.judge.judge(sample, text, target)
            self.store.put_judgments(self.judge_key, self.gen_key, sample, gen_id, [judgment])
        self.stats.judged += 1

    async def _judge_batches(self, judge_q: asyncio.Queue, process: JudgeProcess) -> None:
        """Judge what is queued, up to :data:`JUDGE_BATCH` samples at a time, in the
        judge's worker process once it is ready (in this one until then), storing
        each sample's verdicts in one write."""
        while True:
            batch = [await judge_q.get()]
            while len(batch) < JUDGE_BATCH and not judge_q.empty():
                batch.append(judge_q.get_nowait())
            try:
                plans = [self._plan(*item) for item in batch]
                asks = [(item[0], text, target) for item, (_, _, todo) in zip(batch, plans) for target, text in todo]
                verdicts = iter(await process.judge_many(asks))
                self.stats.judge_requests += len(asks)
                for (sample, _, _), (gen_id, given, todo) in zip(batch, plans):
                    given += [next(verdicts) for _ in todo]
                    self.store.put_judgments(self.judge_key, self.gen_key, sample, gen_id, given)
                    self.stats.judged += 1
                    self._progress()
            finally:
                for _ in batch:
                    judge_q.task_done()

    def _plan(self, sample: Sample, gen: Generation,
              gen_id: str | None) -> tuple[str, list[Judgment], list[tuple[str, str]]]:
        """What judging one generation takes: (its id, the verdicts given without the
        judge, the (target, text) pairs to ask it about). Targets judged already are
        left out, unless their verdict was an error. ``gen_id``: the id of a
        generation made in this run (no verdict on it can be stored yet), else None."""
        if gen_id is None:
            done = self.store.get_judgments(self.judge_key, self.gen_key, sample, gen)
            gen_id = generation_id(sample.content_hash(), gen)
        else:
            done = {}
        given, asks = [], []
        for target in self.judge.targets:
            old = done.get(target)
            if old is not None and "error" not in old.extra:
                continue
            text = target_text(gen, target)
            if text.strip():
                asks.append((target, text))
            else:
                given.append(Judgment(target, MISSING, raw=""))
        return gen_id, given, asks

    def _progress(self) -> None:
        if self.on_progress:
            self.on_progress(1, self._total)

    # ---- results -------------------------------------------------------------------
    def results(self) -> Iterator[Result]:
        return iter_results(self.store, self.bench.name, self.gen_key, self.judge_key)

    def write_results(self) -> dict[str, Any]:
        from .report.files import write_results  # numpy and the metrics: not needed before the first request

        return write_results(self.out, self.bench, self.results, header={
            "benchmark": self.bench.name, "family": self.bench.family, "subset": self.bench.subset,
            "model": self.cfg.model, "judge": self.judge.name, "judge_spec": self.judge_spec,
            "judge_fingerprint": self.judge_key, "protocol": self.cfg.protocol})


async def prefetch(items: Iterator[Sample], then: Callable[[list[Sample]], list[T]],
                   batch: int = 64, first: int = 8) -> AsyncIterator[T]:
    """Load samples in a thread, a batch per hop (``first`` in the first one, so
    that the first request goes out soon), and pass each batch through ``then``
    in that thread too: one hop per sample would pace the whole run at one sample
    per event-loop turn. A loader error comes after the samples read before it."""
    size = first

    def take() -> tuple[list[T], BaseException | None]:
        chunk: list[Sample] = []
        error = None
        try:
            chunk.extend(itertools.islice(items, size))
        except Exception as exc:  # noqa: BLE001 - raised below, after the good samples
            error = exc
        for sample in chunk:
            sample.content_hash()  # stats the images: here, not on the event loop (it is kept)
        return then(chunk), error

    while True:
        done, error = await asyncio.to_thread(take)
        size = batch
        for item in done:
            yield item
        if error is not None:
            raise error
        if not done:
            return


def iter_results(store: Store, benchmark: str, gen_key: str, judge_key: str) -> Iterator[Result]:
    """Stream every sample of the latest run with its generation and judgments."""
    for sample, gen, judgments in store.iter_results(benchmark, gen_key, judge_key):
        yield Result(sample, gen, judgments)


def run_eval(cfg: EvalConfig, on_progress: Callable[[int, int | None], None] | None = None) -> dict[str, Any]:
    """Synchronous entry point used by the CLI and tests."""
    evaluation = Evaluation(cfg, on_progress)
    try:
        return asyncio.run(evaluation.run())
    finally:
        evaluation.store.close()
