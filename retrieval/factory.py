"""Build the store and models a configuration names; the one place that picks implementations."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

from devrag.retrieval.errors import ModelLoadError
from devrag.retrieval.models import Embedder
from devrag.retrieval.owned_store import OwnedStore
from devrag.retrieval.rerank import Precision, Reranker
from devrag.retrieval.store import VectorStore

Runtime = Literal["onnx", "torch", "auto"]
TORCH_EXTRA = "pip install 'devrag[torch]'"


def open_store(
    index_dir: Path,
    qdrant_url: str | None = None,
    collection: str = "devrag",
    api_key: str | None = None,
) -> VectorStore:
    """A Qdrant server by URL when one is configured, else the embedded engine in `index_dir`.

    The embedded engine admits one opener, so it is opened by the index's owner process and
    every devrag process reaches it through that (see `devrag.retrieval.owner`).
    """
    if qdrant_url:
        # qdrant-client takes about a second to import: only pay for it when a server is used.
        from devrag.retrieval.qdrant_store import QdrantStore

        return QdrantStore.connect(qdrant_url, collection, api_key)
    return OwnedStore(index_dir)


def resolve_runtime(runtime: Runtime) -> Literal["onnx", "torch"]:
    """`auto`: torch where it is installed and a CUDA GPU is present, else ONNX Runtime on the CPU."""
    if runtime != "auto":
        return runtime
    if importlib.util.find_spec("torch") is None:
        return "onnx"
    import torch

    return "torch" if torch.cuda.is_available() else "onnx"


def open_embedder(name: str, runtime: Runtime, device: str, onnx_dir: Path) -> Embedder:
    """The embedding model on the chosen runtime; each runtime's libraries are imported only here.

    Raises:
        ModelLoadError: the model cannot be loaded, or the torch runtime is not installed.
    """
    if resolve_runtime(runtime) == "torch":
        _need_torch()
        from devrag.retrieval.models import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder(name, device)
    from devrag.retrieval.onnx_models import OnnxEmbedder

    return OnnxEmbedder(name, onnx_dir)


def open_reranker(name: str, runtime: Runtime, device: str, onnx_dir: Path, precision: Precision) -> Reranker:
    """The cross-encoder on the chosen runtime and precision (bfloat16 is torch's, int8 onnx's).

    Raises:
        ModelLoadError: the model cannot be loaded, the torch runtime is not installed, or the
            precision is not the resolved runtime's.
    """
    resolved = resolve_runtime(runtime)
    if resolved == "torch":
        if precision == "int8":
            raise _foreign_precision(precision, resolved)
        _need_torch()
        from devrag.retrieval.rerank import CrossEncoderReranker

        return CrossEncoderReranker(name, device, precision=precision)
    if precision == "bfloat16":
        raise _foreign_precision(precision, resolved)
    from devrag.retrieval.onnx_models import OnnxReranker

    return OnnxReranker(name, onnx_dir, precision=precision)


def _foreign_precision(precision: Precision, runtime: str) -> ModelLoadError:
    return ModelLoadError(
        f"rerank_precision {precision} is not the {runtime} runtime's: bfloat16 needs torch, int8 needs "
        "onnx. Set DEVRAG_RERANK_PRECISION=auto or another DEVRAG_RUNTIME."
    )


def _need_torch() -> None:
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("sentence_transformers") is None:
        raise ModelLoadError(
            f"The torch runtime needs torch and sentence-transformers: {TORCH_EXTRA}, "
            "or set DEVRAG_RUNTIME=onnx."
        )
