"""The onnx runtime: the embedder and the reranker on ONNX Runtime through fastembed, without torch.

A model loads from its export in the ONNX folder when one is there (`devrag.retrieval.onnx_export`
writes them from local torch weights), else from fastembed's own download of the same model, so a
user names models as the torch runtime does (`sentence-transformers/all-MiniLM-L6-v2`,
`cross-encoder/ms-marco-MiniLM-L6-v2`). Both give the torch runtime's numbers: mean pooling then
unit length for the bi-encoder, the raw logit for the cross-encoder, the same truncation.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from devrag.retrieval.models import (
    DEFAULT_EMBED_MODEL,
    EMBED_MODEL_FIX,
    cache_then_hub,
    is_folder_name,
    load_error,
)
from devrag.retrieval.rerank import (
    DEFAULT_RERANK_MODEL,
    RERANK_BATCH_SIZE,
    RERANK_MAX_LENGTH,
    RERANK_MODEL_FIX,
    CachedReranker,
)

T = TypeVar("T")
R = TypeVar("R")
MODEL_FILE = "model.onnx"
EXPORT_MANIFEST = "devrag-export.json"
# fastembed carries these cross-encoders under the name of their ONNX conversion.
FASTEMBED_RERANKERS = {
    "cross-encoder/ms-marco-MiniLM-L6-v2": "Xenova/ms-marco-MiniLM-L-6-v2",
    "cross-encoder/ms-marco-MiniLM-L-6-v2": "Xenova/ms-marco-MiniLM-L-6-v2",
    "cross-encoder/ms-marco-MiniLM-L12-v2": "Xenova/ms-marco-MiniLM-L-12-v2",
    "cross-encoder/ms-marco-MiniLM-L-12-v2": "Xenova/ms-marco-MiniLM-L-12-v2",
}
# Per model kind: the export script's flag, and the setting that names another model.
FIXES = {
    "the embedding model": ("embed-model", EMBED_MODEL_FIX),
    "the reranker": ("rerank-model", RERANK_MODEL_FIX),
}
EXPORT_FIX = (
    "Export it with `python -m devrag.retrieval.onnx_export --onnx-dir DIR --{flag} {name}` (needs "
    "devrag[torch]) and point DEVRAG_ONNX_DIR at DIR, or set DEVRAG_RUNTIME=torch."
)


def default_onnx_dir() -> Path:
    return Path.home() / ".cache" / "devrag" / "onnx"


def export_name(model: str) -> str:
    """The export folder's name: a local folder's own name, or the hub name with `/` as `--`."""
    if is_folder_name(model):
        return Path(model).expanduser().resolve().name
    return model.replace("/", "--")


def export_dir(onnx_dir: Path, model: str) -> Path:
    return onnx_dir / export_name(model)


class MissingExportError(LookupError):
    """Neither an export in the ONNX folder nor a model fastembed carries."""


class OnnxEmbedder:
    """A mean-pooled bi-encoder on ONNX Runtime; what a chunk may hold comes from its own tokenizer."""

    def __init__(
        self, name: str = DEFAULT_EMBED_MODEL, onnx_dir: Path | None = None, batch_size: int = 64
    ) -> None:
        self.name = name
        self.batch_size = batch_size
        folder = onnx_dir or default_onnx_dir()
        self.model: Any = _loaded(lambda: _load_embedding(name, folder), "the embedding model", name)
        self.dim = int(self.model.embedding_size)
        tokenizer = self.model.model.tokenizer
        # The tokenizer cuts where the model stops reading; [CLS] and [SEP] take two of those pieces.
        self.max_tokens = int(tokenizer.truncation["max_length"]) - tokenizer.num_special_tokens_to_add(False)
        self._counter = type(tokenizer).from_str(tokenizer.to_str())
        self._counter.no_truncation()
        self._counter.no_padding()

    def count_tokens(self, text: str) -> int:
        return len(self._counter.encode(text, add_special_tokens=False).ids)

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        return by_length(texts, len, lambda ts: [v.tolist() for v in self.model.embed(ts, self.batch_size)])


class OnnxReranker(CachedReranker):
    """A cross-encoder on ONNX Runtime, cut and batched as `CrossEncoderReranker` is (its docstring: why)."""

    def __init__(
        self,
        name: str = DEFAULT_RERANK_MODEL,
        onnx_dir: Path | None = None,
        max_length: int = RERANK_MAX_LENGTH,
        batch_size: int = RERANK_BATCH_SIZE,
        cache_size: int = 4096,
    ) -> None:
        super().__init__(name, cache_size)
        self.batch_size = batch_size
        folder = onnx_dir or default_onnx_dir()
        self.model: Any = _loaded(lambda: _load_cross_encoder(name, folder), "the reranker", name)
        tokenizer = self.model.model.tokenizer
        tokenizer.enable_truncation(max_length=max_length, direction=tokenizer.truncation["direction"])

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        scores = by_length(pairs, _pair_length, lambda ps: list(self.model.rerank_pairs(ps, self.batch_size)))
        return [float(s) for s in scores]


def by_length(items: Sequence[T], length: Callable[[T], int], run: Callable[[list[T]], list[R]]) -> list[R]:
    """`run` over `items` longest first, answers in the order given.

    Why: a batch is padded to its longest member, so batches of like lengths waste least. fastembed
    batches in the order it is given; sentence-transformers sorts the same way before it batches.
    """
    order = sorted(range(len(items)), key=lambda i: -length(items[i]))
    answers = run([items[i] for i in order])
    rank = {item: at for at, item in enumerate(order)}
    return [answers[rank[i]] for i in range(len(items))]


def _pair_length(pair: tuple[str, str]) -> int:
    return len(pair[0]) + len(pair[1])


def _load_embedding(name: str, onnx_dir: Path) -> Any:
    from fastembed import TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType

    export = _export_of(onnx_dir, name)
    if export is not None:
        alias = f"devrag-onnx/{export.name}"
        if not _carries(TextEmbedding, alias):
            hidden = json.loads((export / "config.json").read_text(encoding="utf-8"))["hidden_size"]
            TextEmbedding.add_custom_model(
                alias, PoolingType.MEAN, True, ModelSource(hf=alias), int(hidden), model_file=MODEL_FILE
            )
        return TextEmbedding(alias, specific_model_path=str(export))
    if not _carries(TextEmbedding, name):
        raise MissingExportError(f"{onnx_dir} holds no ONNX export of it and fastembed does not carry it")
    return cache_then_hub(lambda **more: TextEmbedding(name, **more), name)


def _load_cross_encoder(name: str, onnx_dir: Path) -> Any:
    from fastembed.common.model_description import ModelSource
    from fastembed.rerank.cross_encoder import TextCrossEncoder

    export = _export_of(onnx_dir, name)
    if export is not None:
        alias = f"devrag-onnx/{export.name}"
        if not _carries(TextCrossEncoder, alias):
            TextCrossEncoder.add_custom_model(alias, ModelSource(hf=alias), model_file=MODEL_FILE)
        return TextCrossEncoder(alias, specific_model_path=str(export))
    carried = FASTEMBED_RERANKERS.get(name, name)
    if not _carries(TextCrossEncoder, carried):
        raise MissingExportError(f"{onnx_dir} holds no ONNX export of it and fastembed does not carry it")
    return cache_then_hub(lambda **more: TextCrossEncoder(carried, **more), name)


def _export_of(onnx_dir: Path, name: str) -> Path | None:
    """The model's export, if there is one.

    Raises:
        FileNotFoundError: `name` is a local folder that is not there (a typo, not a missing export).
    """
    if is_folder_name(name) and not Path(name).expanduser().exists():
        raise FileNotFoundError(f"there is no folder {name}")
    folder = export_dir(onnx_dir.expanduser(), name)
    return folder if (folder / MODEL_FILE).exists() else None


def _carries(registry: Any, name: str) -> bool:
    return any(m["model"].lower() == name.lower() for m in registry.list_supported_models())


def _loaded(load: Callable[[], R], what: str, name: str) -> R:
    """`load()`, or one line naming the model, why it failed, how to export it, and the setting to change.

    Raises:
        ModelLoadError: any load failure, since each is a configuration problem for the user.
    """
    flag, otherwise = FIXES[what]
    try:
        return load()
    except Exception as exc:  # any load failure is a configuration problem for the user
        fix = EXPORT_FIX.format(flag=flag, name=name) if isinstance(exc, MissingExportError) else ""
        raise load_error(f"{what} {name!r}", exc, f"{fix} {otherwise}".strip()) from exc
