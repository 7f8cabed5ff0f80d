"""Build the store and models a configuration names; the one place that picks implementations."""

from __future__ import annotations

from pathlib import Path

from devrag.retrieval.owned_store import OwnedStore
from devrag.retrieval.store import VectorStore


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
