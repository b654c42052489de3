"""One retry policy for every remote call: exponential backoff with full
jitter, or the wait the server asked for (``Retry-After``, or none when another
server of the fleet can take the request at once)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryDecision:
    retry: bool
    retry_after: float | None = None
    reason: str = ""


@dataclass
class RetryPolicy:
    max_attempts: int = 6
    base_s: float = 1.0
    cap_s: float = 60.0

    def wait(self, attempt: int, retry_after: float | None) -> float:
        # A server that says when to come back knows better than our backoff.
        if retry_after is not None:
            return min(self.cap_s, max(0.0, retry_after))
        return random.uniform(0, min(self.cap_s, self.base_s * 2 ** attempt))


async def with_retries(call: Callable[[], Awaitable[T]], classify: Callable[[BaseException], RetryDecision],
                       policy: RetryPolicy) -> tuple[T, int]:
    """Run ``call`` until it succeeds or fails for good; return (result, retries used)."""
    for attempt in range(policy.max_attempts):
        try:
            return await call(), attempt
        except Exception as exc:  # noqa: BLE001 - classified below
            decision = classify(exc)
            if not decision.retry or attempt == policy.max_attempts - 1:
                raise
            await asyncio.sleep(policy.wait(attempt, decision.retry_after))
    raise AssertionError("unreachable")
