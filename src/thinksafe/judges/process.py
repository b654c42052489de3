"""A local judge run in a worker process.

A judge that reads the text alone (:attr:`Judge.local`: rules, no model) costs
pure CPU. With hundreds of samples a second, its regexes would take a large
share of the one core the event loop runs on, the core that also keeps the
requests flowing; in a worker process they run beside it. Work goes over a
socket pair, a batch of texts per round trip.

The process is a fresh interpreter (``python -c``, not ``fork``: the run's
process has threads, and not ``multiprocessing``'s spawn, which would import
the user's main script again). It is started when the first verdicts are due,
so that it does not slow the run's start, and judges nothing until it has
loaded the judge and said so; until then, and for good if it cannot start or
stops, the run judges in its own process: the worker only ever saves time. It
ignores Ctrl-C (the run stops it) and ends when the run's process ends, however
that ends (the socket closes).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import traceback
from multiprocessing.connection import Connection

from ..records import Judgment, Sample
from .base import Judge

Ask = tuple[Sample, str, str]
"""(sample, text, target): one verdict to give."""

_BOOT = ("import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
         "from multiprocessing.connection import Connection\n"
         "conn = Connection(int(sys.argv[1])); sys.path[:] = conn.recv()\n"
         "from thinksafe.judges.process import serve; serve(conn)\n")


class _Gone(Exception):
    """The worker process cannot take work."""


class JudgeProcess:
    """Judges with ``judge``, in a worker process once it is ready, else here."""

    def __init__(self, judge: Judge):
        self.judge = judge
        self._conn: Connection | None = None
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._state = "new"  # -> starting -> ready; -> gone on any failure

    async def judge_many(self, asks: list[Ask]) -> list[Judgment]:
        """The verdicts on ``asks``, in order."""
        if self._ready():
            try:
                return await asyncio.to_thread(self._call, asks)
            except _Gone:
                self._state = "gone"
        return [await self.judge.judge(*ask) for ask in asks]

    def _ready(self) -> bool:
        """Whether the process can take work; never waits (the first call starts it)."""
        if self._state == "new":
            self._start()
        if self._state == "starting" and self._lock.acquire(blocking=False):
            try:
                if self._conn.poll():
                    self._state = "ready" if self._receive() == "ready" else "gone"
            except (_Gone, OSError, RuntimeError):  # it could not load the judge
                self._state = "gone"
            finally:
                self._lock.release()
        return self._state == "ready"

    def _start(self) -> None:
        self._state = "gone"
        ours, theirs = socket.socketpair()
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", _BOOT, str(theirs.fileno())],
                                          pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL)
            self._conn = Connection(ours.detach())
            self._conn.send(sys.path)
            self._conn.send(self.judge)
        except Exception:  # noqa: BLE001 - no worker (a judge that cannot be pickled, no fork...): judge here
            ours.close()
            self.close()
            return
        finally:
            theirs.close()
        self._state = "starting"

    def _call(self, asks: list[Ask]) -> list[Judgment]:
        with self._lock:
            try:
                self._conn.send(asks)
            except OSError:
                raise _Gone from None
            return self._receive()

    def _receive(self):
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            raise _Gone from None
        if kind == "error":
            raise RuntimeError(f"the judge failed in its worker process:\n{value}")
        return value

    def close(self) -> None:
        """Stop the process (it finishes the batch in hand, then sees the socket closed)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        if self._proc is not None:
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
            self._proc = None
        self._state = "gone"


def serve(conn: Connection) -> None:
    """The worker's loop: receive the judge, then batches of asks; reply with verdicts.
    It ends when the socket closes (the run is over, or its process is gone)."""
    try:
        judge: Judge = conn.recv()
    except (EOFError, OSError):
        return
    except Exception:  # noqa: BLE001 - it cannot load the judge: the run judges without us
        _reply(conn, ("error", traceback.format_exc()))
        return
    loop = asyncio.new_event_loop()

    async def judge_all(asks: list[Ask]) -> list[Judgment]:
        return [await judge.judge(sample, text, target) for sample, text, target in asks]

    ok = _reply(conn, ("ok", "ready"))
    while ok:
        try:
            asks = conn.recv()
        except (EOFError, OSError):
            return
        try:
            reply = ("ok", loop.run_until_complete(judge_all(asks)))
        except Exception:  # noqa: BLE001 - a bug in the judge: shown by the run, with its traceback
            reply = ("error", traceback.format_exc())
        ok = _reply(conn, reply)


def _reply(conn: Connection, message: tuple) -> bool:
    try:
        conn.send(message)
        return True
    except OSError:
        return False
