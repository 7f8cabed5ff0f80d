"""What a running server holds: the index, its models (loaded in the background) and one searcher."""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devrag.retrieval.alert_input import AlertInput
from devrag.retrieval.errors import DevragError, ModelLoadError
from devrag.retrieval.factory import open_store
from devrag.retrieval.index import Index
from devrag.retrieval.models import Embedder
from devrag.retrieval.rerank import Reranker
from devrag.retrieval.search import Filters, HybridIndex, Mode
from devrag.retrieval.search_results import SearchResponse
from devrag.retrieval.store import VectorStore
from devrag.server.admission import Admission, ServerBusyError
from devrag.server.metrics import ServerMetrics
from devrag.server.query_log import open_query_log
from devrag.server.settings import Settings, search_config
from devrag.server.tracing import observed_search

log = logging.getLogger(__name__)


class Models:
    """The embedding model and the reranker, loaded on a thread so the server can answer at once.

    A reranker that fails to load leaves search working without it; an embedder that fails to
    load fails every call that needs it, with the loader's message.
    """

    def __init__(
        self, embedder: Callable[[], Embedder], reranker: Callable[[], Reranker] | None = None
    ) -> None:
        self._factories = (embedder, reranker)
        self._done = threading.Event()
        self._embedder: Embedder | None = None
        self._reranker: Reranker | None = None
        self._error: DevragError | None = None
        self.rerank_error: str | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        self._start_lock = threading.Lock()

    @classmethod
    def loaded(cls, embedder: Embedder, reranker: Reranker | None) -> Models:
        """Models already in memory (tests, or a caller that shares them)."""
        models = cls(lambda: embedder, (lambda: reranker) if reranker else None)
        models._load()
        return models

    def start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._done.is_set():
                self._thread = threading.Thread(target=self._load, name="devrag-models", daemon=True)
                self._thread.start()

    def start_later(self, seconds: float) -> None:
        """Start loading after `seconds` unless something starts it sooner.

        Importing torch holds the interpreter for seconds; a client's handshake answers first.
        """
        self._timer = threading.Timer(seconds, self.start)
        self._timer.daemon = True
        self._timer.start()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _load(self) -> None:
        started = time.perf_counter()
        make_embedder, make_reranker = self._factories
        try:
            self._embedder = make_embedder()
            if make_reranker is not None:
                self._reranker = self._load_reranker(make_reranker)
            log.info("models loaded in %.1f s", time.perf_counter() - started)
        except DevragError as exc:
            log.error("%s", exc)
            self._error = exc
        except Exception as exc:  # a thread boundary: anything else would leave callers waiting blind
            log.exception("loading the embedding model failed")
            self._error = ModelLoadError(f"Loading the embedding model failed: {exc!r}. See the server log.")
        finally:
            self._done.set()

    def _load_reranker(self, factory: Callable[[], Reranker]) -> Reranker | None:
        try:
            return factory()
        except DevragError as exc:
            log.error("%s Searching without reranking.", exc)
            self.rerank_error = str(exc)
            return None

    def wait(self) -> tuple[Embedder, Reranker | None]:
        """The models, once loaded; raises the load failure.

        Raises:
            ModelLoadError: when the embedding model could not be loaded.
        """
        self.start()
        self._done.wait()
        if self._error is not None or self._embedder is None:
            raise self._error or ModelLoadError("The embedding model did not load. See the server log.")
        return self._embedder, self._reranker

    @property
    def status(self) -> str:
        if not self._done.is_set():
            return "loading"
        if self._error is not None:
            return f"failed: {self._error}"
        return "ready" if self.rerank_error is None else f"ready without reranker: {self.rerank_error}"


class App:
    """The lifespan state of one server: opened once, shared by every client and tool call."""

    def __init__(
        self,
        settings: Settings,
        models: Models,
        watching: bool = False,
        local: bool = True,
        metrics: ServerMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.metrics = metrics or ServerMetrics()
        self.metrics.track_models(models)
        self.watching = watching
        self.local = local  # whether answers may name the server's folders (see create_server)
        self.query_log = open_query_log(settings)  # None unless the operator turned it on
        self._index: Index | None = None
        self._store: VectorStore | None = None
        self._searcher: HybridIndex | None = None
        self._lock = threading.Lock()
        # The models already use every core: concurrent searches would only contend, while
        # queued ones find the query vector and rerank scores of a repeated query cached.
        queue, wait = settings.search_queue, settings.search_queue_seconds
        self.admission = Admission(settings.search_in_flight, queue, wait)
        # Searches turned away may still be answered without the rerank stage, about a tenth of
        # the work, in their own lane: one at a time and 8 waiting, so that fallback is bounded too.
        self._fallback = Admission(1, 8, wait) if settings.search_when_busy == "hybrid" else None
        # Admitted searches run on these threads only, whichever request thread admitted them: the
        # allocator keeps memory per thread that allocates (glibc arenas), so model work spread
        # over every request thread grew the server's memory with the number of clients.
        lanes = settings.search_in_flight + (self._fallback is not None)
        self._compute = ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="devrag-search")

    def open(self) -> None:
        """Open the index now (starting its owner process), so a failure shows at startup; calls retry."""
        try:
            self.index()
        except DevragError as exc:
            log.error("%s", exc)

    def index(self) -> Index:
        """The index, opened on first use.

        Raises:
            OwnerUnavailableError: the embedded index's owner process could not be started.
        """
        with self._lock:
            if self._index is None:
                s = self.settings
                self._store = open_store(s.index_dir, s.qdrant_url, s.collection, s.qdrant_api_key)
                self._index = Index(self._store, s.embed_model, 0)
            return self._index

    def searcher(self) -> HybridIndex:
        """The read API, once the models are loaded and known to match the index.

        Raises:
            ModelLoadError: the embedding model could not be loaded.
            IndexMismatchError: the index was built with another model or chunker.
        """
        index = self.index()
        embedder, reranker = self.models.wait()
        with self._lock:
            if self._searcher is None:
                index.model, index.dim = embedder.name, embedder.dim
                index.check_compatible()
                self._searcher = HybridIndex(index, embedder, reranker, search_config(self.settings))
            return self._searcher

    def search(
        self, query: str, k: int, mode: Mode, filters: Filters, alerts: Sequence[AlertInput] = ()
    ) -> SearchResponse | None:
        """A search through the read API, once admitted (see devrag.server.admission), traced and counted.

        None when the filters match no indexed chunk: there is nothing to rank. When the server is
        busy and `search_when_busy` is `hybrid`, a reranked search is answered without the rerank
        stage instead: the response's `mode` says `hybrid`. `alerts` route their runbooks first
        (see HybridIndex.search).

        Raises:
            ServerBusyError: too many searches are running or waiting; retry in a few seconds.
        """

        def run() -> SearchResponse | None:
            searcher = self.searcher()
            if not searcher.matches(filters):
                return None
            return self._admitted(searcher, query, k, mode, filters, alerts)

        request = (query, k, mode, filters)
        return observed_search(run, self.metrics, request, self.settings.trace_queries)

    def _admitted(
        self,
        searcher: HybridIndex,
        query: str,
        k: int,
        mode: Mode,
        filters: Filters,
        alerts: Sequence[AlertInput],
    ) -> SearchResponse:
        try:
            with self.admission.slot():  # only entering raises ServerBusyError
                return self._computed(searcher.search, query, k, mode, filters, alerts)
        except ServerBusyError:
            if self._fallback is None or mode != "hybrid+rerank":
                raise
        with self._fallback.slot():
            return self._computed(searcher.search, query, k, "hybrid", filters, alerts)

    def _computed(self, search: Callable[..., SearchResponse], *args: Any) -> SearchResponse:
        """`search(*args)` on a compute thread, in this thread's context (its trace span)."""
        return self._compute.submit(contextvars.copy_context().run, search, *args).result()

    def close(self) -> None:
        self._compute.shutdown(wait=False)
        with self._lock:
            if self._searcher is not None:
                self._searcher.close()
            if self._store is not None:
                self._store.close()
            self._index = self._store = self._searcher = None
