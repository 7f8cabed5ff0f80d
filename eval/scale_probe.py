"""One fresh search process of the scale benchmark: `python -m devrag.eval.scale_probe REQUEST_FILE`.

It loads and warms the models first (not timed), then times what a server just started pays
before its first answer: opening the index and the first `HybridIndex.search`. Then it times
searches unfiltered and filtered, interleaved, and prints one `Probe` as JSON on stdout.
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
    # Variant name -> (Filters fields, queries), timed interleaved (see `_interleaved`); each
    # variant's queries are spelled apart, so no query vector is cached from another variant.
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
    if request.variants:
        result.latency = _interleaved(searcher, request.variants, request.k)
        result.rss_after_queries_mib = rss_mib()
    searcher.close()
    index.close()
    return result


def _interleaved(
    searcher: HybridIndex, variants: dict[str, tuple[dict[str, str], list[str]]], k: int
) -> dict[str, Latency]:
    """Each variant's hybrid searches, timed round by round: the i-th query of every variant, the
    order rotating each round, so that a variant's figures share the machine's moments (and the
    engine's caches) with the others' rather than running alone."""
    names = list(variants)
    samples: dict[str, list[float]] = {name: [] for name in names}
    stages: dict[str, dict[str, list[float]]] = {name: {} for name in names}
    for i in range(max(len(queries) for _, queries in variants.values())):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            fields, queries = variants[name]
            if i >= len(queries):
                continue
            started = time.perf_counter()
            response = searcher.search(queries[i], k, "hybrid", Filters(**fields))
            samples[name].append((time.perf_counter() - started) * 1000)
            for stage, ms in response.timings_ms.items():
                stages[name].setdefault(stage, []).append(ms)
    # The benchmark names each variant's filter (with its size) in the report, not the probe.
    return {name: Latency.of(samples[name], stages=stages[name]) for name in names}


def main() -> int:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    request = ProbeRequest.model_validate_json(Path(sys.argv[1]).read_text(encoding="utf-8"))
    result: Any = probe(request)
    sys.stdout.write(result.model_dump_json() + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
