"""One fresh search process of the scale benchmark: `python -m devrag.eval.scale_probe REQUEST_JSON`.

It loads and warms the models first (not timed), then times what a server just started pays
before its first answer: opening the index and the first `HybridIndex.search`. Then it times
searches over distinct queries, unfiltered and filtered, and prints one `Probe` as JSON on stdout.
Only public read APIs are used (`Index`, `HybridIndex.search`, `Filters`), so the probe times
whatever the search internals are.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from devrag.eval.scale_index import Layout
from devrag.eval.scale_report import MIB, Latency, Probe
from devrag.retrieval.factory import open_embedder, open_reranker
from devrag.retrieval.models import DEFAULT_EMBED_MODEL, Embedder
from devrag.retrieval.onnx_models import default_onnx_dir
from devrag.retrieval.rerank import DEFAULT_RERANK_MODEL, Reranker
from devrag.retrieval.search import Filters, HybridIndex

log = logging.getLogger(__name__)


class ModelSpec(BaseModel):
    """The models a benchmark process loads; `factory` ("module:callable") stands in for them in tests."""

    embed_model: str = DEFAULT_EMBED_MODEL
    rerank_model: str | None = DEFAULT_RERANK_MODEL  # None: no reranker, no reranked mode
    runtime: str = "onnx"
    onnx_dir: str = str(default_onnx_dir())
    factory: str | None = None

    @classmethod
    def from_env(cls) -> ModelSpec:
        """The models devrag's settings name through the environment (DEVRAG_EMBED_MODEL, ...)."""
        env = os.environ
        return cls(
            embed_model=env.get("DEVRAG_EMBED_MODEL") or DEFAULT_EMBED_MODEL,
            rerank_model=env.get("DEVRAG_RERANK_MODEL") or DEFAULT_RERANK_MODEL,
            runtime=env.get("DEVRAG_RUNTIME") or "onnx",
            onnx_dir=env.get("DEVRAG_ONNX_DIR") or str(default_onnx_dir()),
        )

    def embedder(self) -> Embedder:
        if self.factory:
            return self._factory()[0]
        return open_embedder(self.embed_model, self.runtime, "auto", Path(self.onnx_dir))  # type: ignore[arg-type]

    def models(self) -> tuple[Embedder, Reranker | None]:
        if self.factory:
            return self._factory()
        embedder = self.embedder()
        if self.rerank_model is None:
            return embedder, None
        runtime = self.runtime
        return embedder, open_reranker(self.rerank_model, runtime, "auto", Path(self.onnx_dir), "auto")  # type: ignore[arg-type]

    def _factory(self) -> tuple[Embedder, Reranker | None]:
        module, _, name = (self.factory or "").partition(":")
        made: tuple[Embedder, Reranker | None] = getattr(importlib.import_module(module), name)()
        return made


class ProbeRequest(BaseModel):
    workdir: str
    backend_url: str | None
    index_dir: str
    models: ModelSpec
    mode: str
    k: int
    first_query: str
    # Variant name -> (Filters fields, queries); each variant's queries are its own, so no query
    # vector is cached from another variant.
    variants: dict[str, tuple[dict[str, str], list[str]]]
    spawned_at: float  # the parent's time.time() when it started this process


def rss_mib(pid: int | str = "self") -> float | None:
    """Resident memory of a process (Linux), None when it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return round(int(line.split()[1]) * 1024 / MIB, 1)
    except OSError:
        return None
    return None


def probe(request: ProbeRequest) -> Probe:
    started = time.perf_counter()
    embedder, reranker = request.models.models()
    embedder.embed(["warm up the embedding model"])
    if reranker is not None:
        reranker.score("warm up", ["the cross-encoder"])
    models_s = time.perf_counter() - started
    layout = Layout(Path(request.workdir), request.backend_url)
    opened = time.perf_counter()
    index = layout.open(Path(request.index_dir), embedder)
    searcher = HybridIndex(index, embedder, reranker)
    searcher.search(request.first_query, request.k, request.mode)  # type: ignore[arg-type]
    first = time.perf_counter() - opened
    whole = time.time() - request.spawned_at
    result = Probe(
        mode=request.mode,
        first_answer_s=round(first, 3),
        whole_process_s=round(whole, 3),
        models_s=round(models_s, 3),
        rss_first_mib=rss_mib() or 0.0,
    )
    for name, (fields, queries) in request.variants.items():
        result.latency[name] = _timed(searcher, queries, request.k, Filters(**fields))
        if result.rss_after_queries_mib is None:
            result.rss_after_queries_mib = rss_mib()
    searcher.close()
    index.close()
    return result


def _timed(searcher: HybridIndex, queries: list[str], k: int, filters: Filters) -> Latency:
    samples = []
    stages: dict[str, list[float]] = {}
    for query in queries:
        started = time.perf_counter()
        response = searcher.search(query, k, "hybrid", filters)
        samples.append((time.perf_counter() - started) * 1000)
        for stage, ms in response.timings_ms.items():
            stages.setdefault(stage, []).append(ms)
    described = ", ".join(f"{key} {value}" for key, value in filters.model_dump(exclude_none=True).items())
    return Latency.of(samples, described or None, stages)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    args = sys.argv[1:] if argv is None else argv
    request = ProbeRequest.model_validate_json(args[0])
    result: Any = probe(request)
    sys.stdout.write(result.model_dump_json() + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
