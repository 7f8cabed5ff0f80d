"""Cross-encoder reranking on the local CPU or GPU."""

from __future__ import annotations

import logging
import warnings
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any, Protocol

from devrag.retrieval.errors import ModelLoadError
from devrag.retrieval.models import quiet_model_loading, resolve_device

log = logging.getLogger(__name__)

DEFAULT_RERANK_MODEL = "cross-encoder/ms-marco-MiniLM-L6-v2"


class Reranker(Protocol):
    name: str

    def score(self, query: str, passages: Sequence[str]) -> list[float]: ...


class CrossEncoderReranker:
    """A sentence-transformers CrossEncoder; passages are cut to `max_length` word pieces.

    Batch size 8 beats 32 on CPU: a batch is padded to its longest pair, so small batches waste less.
    On CPU the Linear layers run as dynamic int8 (`quantize`): about twice as fast, with the same
    retrieval quality on our evaluation sets (README, "Search latency").
    Scores are cached by (query, passage), so a repeated query costs nothing.
    """

    def __init__(
        self,
        name: str = DEFAULT_RERANK_MODEL,
        device: str = "auto",
        max_length: int = 256,
        batch_size: int = 8,
        cache_size: int = 4096,
        quantize: bool = True,
    ) -> None:
        from sentence_transformers import CrossEncoder

        self.name = name
        self.batch_size = batch_size
        self.device = resolve_device(device)
        quiet_model_loading()
        try:
            self.model: Any = CrossEncoder(name, device=self.device, max_length=max_length)
        except Exception as exc:  # any load failure is a configuration problem for the user
            raise ModelLoadError(
                f"Could not load the reranker {name!r}: {exc}. Set DEVRAG_RERANK_MODEL to a "
                "CrossEncoder model name or local folder, or search with --no-rerank."
            ) from exc
        self.quantized = quantize and self.device == "cpu" and _quantize_linear_layers(self.model)
        self._cache: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._cache_size = cache_size

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        todo = sorted({p for p in passages if (query, p) not in self._cache})
        if todo:
            raw = self.predict([(query, p) for p in todo])
            for passage, value in zip(todo, raw, strict=True):
                self._remember((query, passage), value)
        return [self._cache[(query, p)] for p in passages]

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """Raw model scores, uncached: what the benchmark compares the rerank stage against."""
        if not pairs:
            return []
        scores = self.model.predict(list(pairs), batch_size=self.batch_size, show_progress_bar=False)
        return [float(s) for s in scores]

    def _remember(self, key: tuple[str, str], value: float) -> None:
        self._cache[key] = value
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)


def _quantize_linear_layers(model: Any) -> bool:
    """Dynamic int8 quantization: weights stored as int8, activations quantized per batch on the fly.

    torch marks `torch.ao.quantization` deprecated in favour of torchao, whose int8 path has no fast
    CPU kernel without torch.compile (measured: no faster than float32). The pinned torch still ships
    it; a torch without it runs the reranker in float32, with a warning.
    """
    import torch

    ao_quantization = getattr(getattr(torch, "ao", None), "quantization", None)
    if not hasattr(ao_quantization, "quantize_dynamic"):
        log.warning("This torch has no dynamic int8 quantization; the reranker runs in float32.")
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))
        ao_quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)
    return True
