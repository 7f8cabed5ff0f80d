"""Cross-encoder reranking: the cached scoring every runtime shares, and the torch runtime."""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from devrag.retrieval.models import load_error, load_pretrained, quiet_model_loading, resolve_device

log = logging.getLogger(__name__)

DEFAULT_RERANK_MODEL = "cross-encoder/ms-marco-MiniLM-L6-v2"
# bfloat16 is the torch runtime's, int8 the onnx runtime's; auto picks per runtime and CPU.
Precision = Literal["auto", "float32", "bfloat16", "int8"]
RERANK_MAX_LENGTH = 192  # word pieces of (query, passage); the reason is CrossEncoderReranker's
RERANK_BATCH_SIZE = 8
RERANK_MODEL_FIX = (
    "Set DEVRAG_RERANK_MODEL (rerank_model in the config file) to a CrossEncoder model "
    "name or local folder, or search with --no-rerank."
)


class Reranker(Protocol):
    name: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


class CachedReranker(ABC):
    """Scores cached by (query, passage) over a runtime's raw `predict`, so a repeated query costs nothing.

    Each runtime (torch here, ONNX Runtime in `devrag.retrieval.onnx_models`) supplies `predict`;
    the cache, and what the benchmark times as the rerank stage, are the same for both.
    """

    name: str

    def __init__(self, name: str, cache_size: int = 4096) -> None:
        self.name = name
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._cache_size = cache_size

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        todo = sorted({p for p in passages if (query, p) not in self._cache})
        if todo:
            raw = self.predict([(query, p) for p in todo])
            for passage, value in zip(todo, raw, strict=True):
                self._remember((query, passage), value)
        return [self._cache[(query, p)] for p in passages]

    @abstractmethod
    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Raw model scores, uncached: what the benchmark compares the rerank stage against."""

    def _remember(self, key: tuple[str, str], value: float) -> None:
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


class CrossEncoderReranker(CachedReranker):
    """A sentence-transformers CrossEncoder; each (query, passage) pair is cut to `max_length` word pieces.

    192 word pieces (the query, the breadcrumb and the head of the section) ranked as well as 256 on
    our evaluation sets at three quarters of the cost. Batch size 8 beats 32 on CPU: a batch is
    padded to its longest pair, so small batches waste less. On a CPU with bfloat16 instructions the
    model runs in bfloat16 (`precision="auto"`): 1.8x as fast as float32 with scores within 0.12,
    where dynamic int8 moved scores by up to 0.7 and cost Recall@1 (README, "Search latency").
    """

    runtime = "torch"

    def __init__(
        self,
        name: str = DEFAULT_RERANK_MODEL,
        device: str = "auto",
        max_length: int = RERANK_MAX_LENGTH,
        batch_size: int = RERANK_BATCH_SIZE,
        cache_size: int = 4096,
        precision: Precision = "auto",
    ) -> None:
        from sentence_transformers import CrossEncoder

        super().__init__(name, cache_size)
        self.batch_size = batch_size
        self.device = resolve_device(device)
        quiet_model_loading()
        try:
            self.model: Any = load_pretrained(CrossEncoder, name, device=self.device, max_length=max_length)
        except Exception as exc:  # any load failure is a configuration problem for the user
            raise load_error(f"the reranker {name!r}", exc, RERANK_MODEL_FIX) from exc
        self.precision = resolve_precision(precision, self.device)
        if self.precision == "bfloat16":
            import torch

            self.model.model.to(torch.bfloat16)

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        scores = self.model.predict(list(pairs), batch_size=self.batch_size, show_progress_bar=False)
        return [float(s) for s in scores]


def resolve_precision(precision: Precision, device: str) -> Precision:
    """`auto`: bfloat16 on a CPU that computes it natively (AVX512-BF16 or AMX), else float32."""
    if precision != "auto":
        return precision
    return "bfloat16" if device == "cpu" and _native_bf16() else "float32"


def _native_bf16() -> bool:
    """Whether this CPU has bfloat16 instructions; without them bfloat16 is emulated, and slower."""
    import torch

    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in probes)
