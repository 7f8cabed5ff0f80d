"""The onnx runtime: the embedder and the reranker on ONNX Runtime through fastembed, without torch.

A model loads from its export in the ONNX folder when one is there (`devrag.retrieval.onnx_export`
writes them from local torch weights), else from fastembed's own download of the same model, so a
user names models as the torch runtime does (`sentence-transformers/all-MiniLM-L6-v2`,
`cross-encoder/ms-marco-MiniLM-L6-v2`). Both give the torch runtime's numbers: mean pooling then
unit length for the bi-encoder, the raw logit for the cross-encoder, the same truncation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Literal, TypeVar

from devrag.retrieval.models import (
    DEFAULT_EMBED_MODEL,
    EMBED_MODEL_FIX,
    cache_then_hub,
    is_folder_name,
    load_error,
)
from devrag.retrieval.rerank import (
    DEFAULT_RERANK_MODEL,
    RERANK_MAX_LENGTH,
    RERANK_MODEL_FIX,
    CachedReranker,
)

R = TypeVar("R")
T = TypeVar("T")
MODEL_FILE = "model.onnx"
INT8_MODEL_FILE = "model_int8.onnx"  # the reranker with dynamic int8 weights, beside its float32 graph
# auto: int8 where the export carries its int8 graph, else float32 (`resolve_onnx_precision`).
OnnxPrecision = Literal["auto", "float32", "int8"]
# One text (or pair) per model call, on one thread, with the calls spread over one worker per CPU.
# Measured on 2 cores: a batch pads every member to its longest, and even sorted by length that costs
# more than batching saves (all-MiniLM-L6-v2: 105 texts/s one at a time, 55 in batches of 64; the L12
# cross-encoder, 20 pairs: 362 ms one at a time, 491 ms in eights); and two single-threaded calls at
# once do more than one call on two threads (embedding 1.14x the texts/s; ten int8 reranker pairs
# 97 ms against 155, the same scores to the bit). And int8 quantises activations over the whole
# batch, so in a batch a pair's score would depend on its neighbours, and the cache would keep
# whichever it got.
MODEL_THREADS = 1
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


def cpu_workers() -> int:
    """The CPUs this process may run on (a container's or `taskset`'s limit, where the OS says)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity else os.cpu_count() or 1


class OneAtATime:
    """Calls a model on one item at a time, on as many workers as there are CPUs.

    Why not a batch: see MODEL_THREADS. Each model has its own workers, so a search's reranker pairs
    never queue behind an ingest's texts. The model releases the interpreter while it runs.
    """

    def __init__(self, name: str) -> None:
        self._workers = ThreadPoolExecutor(cpu_workers(), thread_name_prefix=f"devrag-{name}")

    def map(self, call: Callable[[T], R], items: Sequence[T]) -> list[R]:
        if len(items) < 2:
            return [call(item) for item in items]
        return list(self._workers.map(call, items))


class MissingExportError(LookupError):
    """Neither an export in the ONNX folder nor a model fastembed carries."""


class OnnxEmbedder:
    """A mean-pooled bi-encoder on ONNX Runtime; what a chunk may hold comes from its own tokenizer."""

    runtime = "onnx"

    def __init__(self, name: str = DEFAULT_EMBED_MODEL, onnx_dir: Path | None = None) -> None:
        self.name = name
        self._calls = OneAtATime("embedder")
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
        return self._calls.map(self._embed_one, texts)

    def _embed_one(self, text: str) -> list[float]:
        return next(iter(self.model.embed([text], 1))).tolist()


class OnnxReranker(CachedReranker):
    """A cross-encoder on ONNX Runtime, cut as `CrossEncoderReranker` is (its docstring: why).

    `precision="int8"` runs the export's dynamic int8 graph (`model_int8.onnx`, written by
    `devrag.retrieval.onnx_export`): about 1.7x as fast on a CPU with VNNI, within the quality bounds
    at ten candidates (README, "Search latency"). `auto`, the default, picks it where it exists.
    """

    runtime = "onnx"

    def __init__(
        self,
        name: str = DEFAULT_RERANK_MODEL,
        onnx_dir: Path | None = None,
        max_length: int = RERANK_MAX_LENGTH,
        precision: OnnxPrecision = "auto",
        cache_size: int = 4096,
    ) -> None:
        super().__init__(name, cache_size)
        self._calls = OneAtATime("reranker")
        folder = onnx_dir or default_onnx_dir()
        loaded = _loaded(lambda: _load_cross_encoder(name, folder, precision), "the reranker", name)
        self.precision, self.model = loaded
        tokenizer = self.model.model.tokenizer
        tokenizer.enable_truncation(max_length=max_length, direction=tokenizer.truncation["direction"])

    def predict(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        return self._calls.map(self._score_one, pairs)

    def _score_one(self, pair: tuple[str, str]) -> float:
        return float(next(iter(self.model.rerank_pairs([pair], 1))))


def resolve_onnx_precision(name: str, onnx_dir: Path, precision: OnnxPrecision) -> OnnxPrecision:
    """`auto`: int8 where devrag's export of the reranker carries `model_int8.onnx`, else float32.

    Why not int8 everywhere: the int8 graph is made by devrag's export script, and fastembed's own
    downloads carry none. At ten candidates int8 keeps nDCG@10 within 0.005 and Recall@1 within 0.01
    of float32 on every alert set and SciFact, at about 0.55x the rerank stage (README, "Search latency").

    Raises:
        FileNotFoundError: `name` is a local folder that is not there.
    """
    if precision != "auto":
        return precision
    export = _export_of(onnx_dir, name)
    return "int8" if export is not None and (export / INT8_MODEL_FILE).exists() else "float32"


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
        return TextEmbedding(alias, specific_model_path=str(export), threads=MODEL_THREADS)
    if not _carries(TextEmbedding, name):
        raise MissingExportError(f"{onnx_dir} holds no ONNX export of it and fastembed does not carry it")
    return cache_then_hub(lambda **more: TextEmbedding(name, threads=MODEL_THREADS, **more), name)


def _load_cross_encoder(name: str, onnx_dir: Path, asked: OnnxPrecision) -> tuple[OnnxPrecision, Any]:
    """The precision `asked` resolves to, and the model loaded in it."""
    precision = resolve_onnx_precision(name, onnx_dir, asked)
    return precision, _cross_encoder_in(name, onnx_dir, precision)


def _cross_encoder_in(name: str, onnx_dir: Path, precision: OnnxPrecision) -> Any:
    from fastembed.common.model_description import ModelSource
    from fastembed.rerank.cross_encoder import TextCrossEncoder

    export = _export_of(onnx_dir, name)
    if export is not None:
        model_file = INT8_MODEL_FILE if precision == "int8" else MODEL_FILE
        if not (export / model_file).exists():
            raise MissingExportError(f"its export in {export} has no {model_file} (made before int8)")
        alias = f"devrag-onnx/{export.name}" + ("-int8" if precision == "int8" else "")
        if not _carries(TextCrossEncoder, alias):
            TextCrossEncoder.add_custom_model(alias, ModelSource(hf=alias), model_file=model_file)
        return TextCrossEncoder(alias, specific_model_path=str(export), threads=MODEL_THREADS)
    if precision == "int8":
        raise MissingExportError(f"{onnx_dir} holds no ONNX export of it, and int8 runs only from an export")
    carried = FASTEMBED_RERANKERS.get(name, name)
    if not _carries(TextCrossEncoder, carried):
        raise MissingExportError(f"{onnx_dir} holds no ONNX export of it and fastembed does not carry it")
    return cache_then_hub(lambda **more: TextCrossEncoder(carried, threads=MODEL_THREADS, **more), name)


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
