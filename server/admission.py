"""Admission control for searches: a few run, a bounded queue waits its turn, the rest hear "busy".

Searches are CPU bound (a reranked one takes ~1 s of both cores of a small machine), so running
more at once only slows each one. Without a bound, 20 agents saw p95 26 s and 50 saw 65 s on
2 cores, past the 30-60 s an agent waits for a tool. Here a caller starts within `wait_s` (15 s by
default, so 20 agents asking at once on a small index are all answered) and so has its answer
inside 30 s, or hears that the server is busy and to retry, which it can act on. It hears it at
once when the queue ahead of it would take longer than `wait_s` to drain at the recent pace: a
search takes 0.1 s on a small index and 1.1 s on the prometheus-operator runbooks on 2 busy
cores, so no fixed queue length says that. The queue bound (24) caps the worker threads parked,
and the deadline catches a misestimate.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager

from devrag.retrieval.errors import DevragError

SKIPPED_RERANK_NOTE = (
    "The server was busy, so this answer skipped the rerank stage (mode `hybrid`): its order is "
    "less precise. Search again in a few seconds for the reranked answer."
)


class ServerBusyError(DevragError):
    """Too many searches are running or waiting; the caller should retry in a few seconds."""


class Admission:
    """At most `limit` holders at once; up to `queue` more wait, first come first served, `wait_s` each.

    A slot that frees passes straight to the longest waiter, so a newcomer never overtakes the queue.
    A newcomer whose estimated wait (the queue ahead of it at the recent time per slot) is over
    `wait_s` is turned away at once rather than after waiting `wait_s` in vain.
    """

    def __init__(self, limit: int, queue: int, wait_s: float) -> None:
        self.limit, self.queue, self.wait_s = limit, queue, wait_s
        self.shed = 0  # callers turned away so far
        self._running = 0
        # How long recent holders kept a slot: the median ignores a cold first search (models).
        self._holds: deque[float] = deque(maxlen=16)
        self._waiters: deque[threading.Event] = deque()
        self._lock = threading.Lock()

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the `limit` slots for the duration of the block.

        Raises:
            ServerBusyError: the queue is full, or the wait for a slot ran out.
        """
        self._enter()
        started = time.monotonic()
        try:
            yield
        finally:
            self._leave(time.monotonic() - started)

    def _enter(self) -> None:
        with self._lock:
            if self._running < self.limit and not self._waiters:
                self._running += 1
                return
            if len(self._waiters) >= self.queue:
                self.shed += 1
                raise self._busy("the queue is full")
            expected = self._expected_wait()
            if expected > self.wait_s:
                self.shed += 1
                raise self._busy(f"a new one would wait about {expected:.0f} s")
            turn = threading.Event()
            self._waiters.append(turn)
        if turn.wait(self.wait_s):
            return
        with self._lock:
            if turn.is_set():  # handed a slot just as the wait ran out: take it
                return
            self._waiters.remove(turn)
            self.shed += 1
        raise self._busy(f"this search waited {self.wait_s:g} s for its turn")

    def _leave(self, held_s: float) -> None:
        with self._lock:
            self._holds.append(held_s)
            if self._waiters:
                self._waiters.popleft().set()  # the slot passes on; _running stays the same
            else:
                self._running -= 1

    def _expected_wait(self) -> float:
        """A newcomer's wait at the recent pace; 0 until 4 holds say what that pace is."""
        if len(self._holds) < 4:
            return 0.0
        return (len(self._waiters) + 1) * statistics.median(self._holds) / self.limit

    def _busy(self, why: str) -> ServerBusyError:
        return ServerBusyError(
            f"The server is busy: {self.limit} search(es) running and {len(self._waiters)} waiting; "
            f"{why}. Retry this search in a few seconds."
        )
