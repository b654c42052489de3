"""Several servers behind one model, and how many requests to keep in flight.

* :class:`Fleet`: the endpoints of one model (``--base-url`` given several
  times or comma-separated). Each request goes to the live endpoint with the
  fewest requests outstanding. An endpoint that refuses or drops connections is
  taken out; after a pause it is probed (``GET /models``) and put back when it
  answers. While every endpoint is out, requests still go to the one due back
  first, so a single dead server fails its requests (after retries) instead of
  hanging the run.
* :class:`AdaptiveLimit`: AIMD on the in-flight limit. Sustained overload
  answers (429, 503) halve the limit, once per round of requests; every
  ``limit`` successes add one back, up to ``--concurrency``. The final and the
  lowest limit are reported (``stats.json``, and printed after the run).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import UserError


def split_urls(value: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Server URLs from ``--base-url`` values: repeated and/or comma-separated."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    urls = [u.strip().rstrip("/") for item in items for u in item.split(",") if u.strip()]
    for url in urls:
        if not url.startswith(("http://", "https://")):
            raise UserError(f"server URL {url!r}: expected http://HOST:PORT/v1 (several: comma-separated)")
    return list(dict.fromkeys(urls))


@dataclass
class Endpoint:
    url: str
    outstanding: int = 0
    requests: int = 0
    failures: int = 0
    removals: int = 0
    up: bool = True
    back_at: float = 0.0
    """When a removed endpoint is next probed."""
    probing: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"url": self.url, "requests": self.requests, "failures": self.failures, "removals": self.removals,
                "up": self.up}


@dataclass
class Fleet:
    """Least-outstanding choice over endpoints, with removal and probing."""

    urls: list[str]
    probe: Callable[[str], Awaitable[bool]] | None = None
    """``probe(url)``: whether a removed endpoint answers again."""
    pause_s: float = 1.0
    max_pause_s: float = 30.0
    endpoints: list[Endpoint] = field(init=False)

    def __post_init__(self) -> None:
        if not self.urls:
            raise UserError("no server URL given (--base-url)")
        self.endpoints = [Endpoint(u) for u in self.urls]
        self._next = 0

    def pick(self) -> Endpoint:
        """The endpoint for the next request (counted as outstanding until :meth:`release`)."""
        n = len(self.endpoints)
        self._next = (self._next + 1) % n
        # Rotating the order makes ties alternate, so an idle fleet spreads its first requests.
        order = self.endpoints[self._next:] + self.endpoints[:self._next] if n > 1 else self.endpoints
        live = [e for e in order if e.up]
        best = min(live, key=lambda e: e.outstanding) if live else min(order, key=lambda e: e.back_at)
        self._probe_due()
        best.outstanding += 1
        best.requests += 1
        return best

    def release(self, endpoint: Endpoint, ok: bool, unreachable: bool = False) -> None:
        """A request ended; ``unreachable``: it could not connect or the connection dropped."""
        endpoint.outstanding -= 1
        if ok:
            if not endpoint.up:
                self._restore(endpoint)
            return
        endpoint.failures += 1
        if unreachable and endpoint.up:
            endpoint.up = False
            endpoint.removals += 1
            endpoint.back_at = time.monotonic() + self._pause(endpoint)

    def any_up(self) -> bool:
        return any(e.up for e in self.endpoints)

    def _pause(self, endpoint: Endpoint) -> float:
        return min(self.max_pause_s, self.pause_s * 2 ** min(endpoint.removals - 1, 10))

    def _restore(self, endpoint: Endpoint) -> None:
        endpoint.up = True

    def _probe_due(self) -> None:
        if self.probe is None:
            return
        now = time.monotonic()
        for e in self.endpoints:
            if not e.up and not e.probing and e.back_at <= now:
                e.probing = True
                asyncio.get_running_loop().create_task(self._probe(e))

    async def _probe(self, endpoint: Endpoint) -> None:
        try:
            ok = await self.probe(endpoint.url) if self.probe else False
        finally:
            endpoint.probing = False
        if ok:
            self._restore(endpoint)
        else:
            endpoint.removals += 1
            endpoint.back_at = time.monotonic() + self._pause(endpoint)

    def stats(self) -> list[dict[str, Any]]:
        return [e.to_dict() for e in self.endpoints]


class AdaptiveLimit:
    """An in-flight limit between 1 and ``ceiling`` that backs off on overload (AIMD).

    :meth:`acquire` returns a ticket (the request's send order). Overload
    answers count only for requests sent after the last cut, since those sent
    before it reflect the old limit; two such answers within one round of
    requests make a cut (a lone 429 is a blip, not a sustained overload), which
    halves the limit. Each success
    adds ``1 / limit``, so the limit climbs back by one per round of requests.
    """

    def __init__(self, ceiling: int):
        self.ceiling = max(1, ceiling)
        self.limit = float(self.ceiling)
        self.lowest = self.ceiling
        self.overloads = 0
        self._in_flight = 0
        self._issued = 0
        self._cut_at = 0
        """Tickets up to this one were sent before the last cut."""
        self._strikes = 0
        self._strike_at = 0
        self._waiters: deque[asyncio.Future] = deque()

    async def acquire(self) -> int:
        if self._in_flight >= int(self.limit) or self._waiters:
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut  # the slot is handed over by _wake
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self.release()
                else:
                    self._waiters.remove(fut)
                raise
        else:
            self._in_flight += 1
        self._issued += 1
        return self._issued

    def release(self) -> None:
        self._in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._in_flight < int(self.limit):
            fut = self._waiters.popleft()
            if not fut.done():
                self._in_flight += 1
                fut.set_result(None)

    def success(self) -> None:
        if self.limit < self.ceiling:
            self.limit = min(float(self.ceiling), self.limit + 1.0 / self.limit)
            self._wake()

    def overload(self, ticket: int) -> None:
        """The server answered the request with this ticket: overloaded (429 / 503)."""
        self.overloads += 1
        if ticket <= self._cut_at:
            return
        if self._strikes and ticket > self._strike_at + int(self.limit):
            self._strikes = 0  # the last one was more than a round ago: a blip
        if not self._strikes:
            self._strike_at = ticket
        self._strikes += 1
        if self._strikes < 2:
            return
        self._strikes = 0
        self._cut_at = self._issued
        self.limit = max(1.0, self.limit / 2)
        self.lowest = min(self.lowest, int(self.limit))

    def stats(self) -> dict[str, Any]:
        return {"concurrency": self.ceiling, "limit_final": int(self.limit), "limit_min": self.lowest,
                "overloads": self.overloads}
