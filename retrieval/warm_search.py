"""Searches answered by an embedded index's owner process, whose models stay loaded between commands.

A `devrag search` in a new process loads its models (a second or two on ONNX Runtime) before it
answers. The index's owner (`devrag.retrieval.owner`) outlives the command by its idle timeout, so
a command asks the owner to search instead: the first search loads the models there, and every one
after it, from any process, answers with them warm until the owner goes idle. An agent that runs
`devrag search` again and again pays for the models once. A server (`devrag serve`) keeps its own
models and searches in-process.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from devrag.retrieval.alert_input import AlertInput
from devrag.retrieval.factory import Runtime, open_embedder, open_reranker
from devrag.retrieval.filters import Filters
from devrag.retrieval.index import Index
from devrag.retrieval.models import Embedder
from devrag.retrieval.owned_store import OwnedStore
from devrag.retrieval.rerank import Precision, Reranker
from devrag.retrieval.search import HybridIndex, Mode
from devrag.retrieval.search_config import SearchConfig
from devrag.retrieval.search_input import check_query_length
from devrag.retrieval.search_results import SearchResponse
from devrag.retrieval.store import VectorStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelChoice:
    """The models a search runs, as a configuration names them."""

    embed_model: str
    rerank_model: str | None  # None: this search does not rerank
    runtime: Runtime
    device: str
    onnx_dir: Path
    precision: Precision


@dataclass(frozen=True)
class SearchCall:
    """One search, with everything the owner needs to answer it as the calling process would."""

    models: ModelChoice
    query: str
    k: int
    mode: Mode
    filters: Filters = field(default_factory=Filters)
    alerts: tuple[AlertInput, ...] = ()
    config: SearchConfig = field(default_factory=SearchConfig)


def owner_search(store: VectorStore, call: SearchCall) -> SearchResponse | None:
    """The owner's answer; None when the store has no owner (a Qdrant server): search in-process.

    Raises:
        DevragError: the models cannot be loaded, or the query is refused (too long).
    """
    if not isinstance(store, OwnedStore):
        return None
    return store.warm_search(call)


class WarmSearches:
    """In the owner: the models each choice names, loaded once, and a searcher per choice and config.

    The searchers reach the engine as every client does, through the owner's own socket, so the
    engine stays one store call at a time whoever asks; they hang up after each search, so that
    only the command waiting for an answer counts as the owner's client and the owner still leaves
    when idle.
    """

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self._embedders: dict[tuple[str, Runtime, str, Path], Embedder] = {}
        self._rerankers: dict[tuple[str, Runtime, str, Path, Precision], Reranker] = {}
        self._searchers: dict[tuple[ModelChoice, str], HybridIndex] = {}
        self._lock = threading.Lock()

    def search(self, call: SearchCall) -> SearchResponse:
        searcher = self._searcher(call.models, call.config)
        try:
            searcher.index.check_compatible()  # an index rebuilt with another model meanwhile is refused
            check_query_length(call.query, searcher.embedder.count_tokens)
            return searcher.search(call.query, call.k, call.mode, call.filters, call.alerts)
        finally:
            searcher.index.close()  # the next search connects again

    def _searcher(self, models: ModelChoice, config: SearchConfig) -> HybridIndex:
        with self._lock:  # a second caller waits for the first one's models rather than load its own
            key = (models, config.model_dump_json())
            if key not in self._searchers:
                embedder = self._embedder(models)
                reranker = self._reranker(models) if models.rerank_model else None
                index = Index(OwnedStore(self.index_dir), embedder.name, embedder.dim)
                self._searchers[key] = HybridIndex(index, embedder, reranker, config)
            return self._searchers[key]

    def _embedder(self, models: ModelChoice) -> Embedder:
        key = (models.embed_model, models.runtime, models.device, models.onnx_dir)
        if key not in self._embedders:
            self._embedders[key] = open_embedder(*key)
            log.info("loaded embedding model %s (%s) for searches", models.embed_model, models.runtime)
        return self._embedders[key]

    def _reranker(self, models: ModelChoice) -> Reranker:
        assert models.rerank_model is not None
        key = (models.rerank_model, models.runtime, models.device, models.onnx_dir, models.precision)
        if key not in self._rerankers:
            self._rerankers[key] = open_reranker(*key)
            log.info("loaded reranker %s (%s) for searches", models.rerank_model, models.runtime)
        return self._rerankers[key]

    def close(self) -> None:
        with self._lock:
            for searcher in self._searchers.values():
                searcher.close()
                searcher.index.close()
            self._searchers.clear()
