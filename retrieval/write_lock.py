"""One writer at a time: across this process's threads, and across every process that shares the store."""

from __future__ import annotations

import threading
from contextlib import ExitStack
from types import TracebackType

from devrag.retrieval.store import VectorStore


class WriteLock:
    """A re-entrant lock whose outermost hold also holds the store's writer lease.

    An ingest holds it for its whole run, and the writes inside it take it again; only the
    outermost one pays for the lease (for the embedded index, a request to its owner process).
    """

    def __init__(self, store: VectorStore) -> None:
        self._store = store
        self._local = threading.RLock()
        self._depth = 0
        self._lease = ExitStack()

    def __enter__(self) -> WriteLock:
        self._local.acquire()
        try:
            if self._depth == 0:
                self._lease.enter_context(self._store.writer())
        except BaseException:
            self._local.release()
            raise
        self._depth += 1
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._depth -= 1
        try:
            if self._depth == 0:
                self._lease.close()
        finally:
            self._local.release()
