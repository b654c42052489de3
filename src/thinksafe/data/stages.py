"""Cached, concurrent stages: caption, think, and the optional model checks.

Each stage maps items to results through the run store's cache table. The key
hashes everything that changes the result (stage, prompt, model identity,
decoding settings, inputs), so a re-run asks nothing that was answered before,
and a changed policy, prompt or teacher asks again. Only answers are cached:
a request that failed for good is recorded as an error on the item and tried
again on the next run.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..models.base import Backend, BackendError, GenerationSettings, Message
from ..records import Completion, fingerprint
from ..store.sqlite import Store

Progress = Callable[[str, int, int], None]
"""on_progress(stage, advance, total)."""


@dataclass
class StageStats:
    requests: int = 0
    cached: int = 0
    errors: int = 0

    def to_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "cached": self.cached, "errors": self.errors}


@dataclass
class Job:
    """One request of a stage: its cache key and how to make it."""

    key: str
    call: Callable[[], Awaitable[dict[str, Any]]]


@dataclass
class StageResult:
    value: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Stage:
    """Runs jobs with at most ``concurrency`` requests in flight, caching answers."""

    name: str
    store: Store
    concurrency: int = 8
    on_progress: Progress | None = None
    stats: StageStats = field(default_factory=StageStats)

    async def run(self, jobs: list[Job]) -> dict[str, StageResult]:
        """Results by key; jobs sharing a key are asked once."""
        unique = {job.key: job for job in jobs}
        results: dict[str, StageResult] = {}
        sem = asyncio.Semaphore(max(1, self.concurrency))

        async def one(job: Job) -> None:
            results[job.key] = await self._one(job, sem)
            if self.on_progress:
                self.on_progress(self.name, 1, len(unique))

        await asyncio.gather(*(one(job) for job in unique.values()))
        return results

    async def _one(self, job: Job, sem: asyncio.Semaphore) -> StageResult:
        cached = self.store.get_cached(self.name, job.key)
        if cached is not None:
            self.stats.cached += 1
            return StageResult(cached)
        async with sem:
            self.stats.requests += 1
            try:
                value = await job.call()
            except (BackendError, OSError) as exc:
                self.stats.errors += 1
                return StageResult(error=f"{type(exc).__name__}: {exc}")
        if value.get("error"):
            self.stats.errors += 1
            return StageResult(error=str(value["error"]))
        self.store.put_cached(self.name, job.key, value)
        return StageResult(value)


def completion_job(backend: Backend, model_fp: dict[str, Any], settings: GenerationSettings,
                   messages: list[Message], stage: str, inputs: Any = None) -> Job:
    """A job that sends ``messages`` and caches the raw Completion.

    ``inputs`` stands in for the messages in the key when they hold file paths
    (an image is keyed by its content hash, not by where it lies).
    """
    key = fingerprint({"stage": stage, "model": model_fp, "settings": settings.to_dict(),
                       "request": inputs if inputs is not None else messages})

    async def call() -> dict[str, Any]:
        completion: Completion = await backend.complete(messages, settings)
        return completion.to_dict()

    return Job(key, call)
