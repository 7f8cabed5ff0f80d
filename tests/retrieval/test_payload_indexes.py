"""Payload indexes: every open of a store creates the ones it lacks, and each store can list them."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import qdrant_edge as qe
from filelock import FileLock
from qdrant_client.http.exceptions import ResponseHandlingException

import devrag.retrieval.qdrant_store as qdrant_store
from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.owned_store import OwnedStore
from devrag.retrieval.owner import OwnerPaths
from devrag.retrieval.qdrant_store import QdrantStore
from devrag.retrieval.store import INDEXED_FIELDS


def drop_index(index_dir: Path, field: str) -> None:
    """What a kill between creating the shard and that index leaves, made on purpose."""
    shard = qe.EdgeShard.load(str(index_dir / "shard"))
    shard.update(qe.UpdateOperation.delete_field_index(field))
    assert field not in shard.info().payload_schema
    shard.close()


def test_each_store_lists_its_payload_indexes_once_the_collection_exists(store):
    store.ensure_collection(4)
    if isinstance(store, QdrantStore):
        assert store.payload_indexes() is None, "qdrant-client's local mode keeps no payload indexes"
    else:
        assert store.payload_indexes() == set(INDEXED_FIELDS)


def test_an_edge_store_without_a_shard_has_no_payload_indexes_yet(tmp_path):
    store = EdgeStore(tmp_path / "index")
    assert store.payload_indexes() == set()
    store.close()


def test_reopening_an_edge_store_creates_a_payload_index_that_went_missing(tmp_path):
    store = EdgeStore(tmp_path / "index")
    store.ensure_collection(4)
    store.close()
    drop_index(tmp_path / "index", "doc_type")
    again = EdgeStore(tmp_path / "index")
    assert again.payload_indexes() == set(INDEXED_FIELDS)
    again.close()


def test_the_owner_forwards_payload_indexes_and_its_next_start_recreates_a_missing_one(tmp_path):
    paths = OwnerPaths(tmp_path / "index")
    store = OwnedStore(paths.index_dir)
    store.ensure_collection(4)
    assert store.payload_indexes() == set(INDEXED_FIELDS)
    owner = store.owner_pid()
    store.close()
    os.kill(owner, signal.SIGTERM)
    with FileLock(str(paths.lock), timeout=30):  # held until the owner has let go of the shard
        drop_index(paths.index_dir, "commit")
    again = OwnedStore(paths.index_dir)
    assert again.owner_pid() != owner
    assert again.payload_indexes() == set(INDEXED_FIELDS)
    again.close()


class FakeServer:
    """The calls QdrantStore.connect makes of a Qdrant server whose collection lacks two indexes."""

    def __init__(self, url: str, api_key: str | None = None, down: bool = False) -> None:
        self.schema: dict[str, Any] = dict.fromkeys(f for f in INDEXED_FIELDS if f not in ("path", "commit"))
        self.created: list[str] = []
        self.down = down

    def collection_exists(self, name: str) -> bool:
        if self.down:
            raise ResponseHandlingException(ConnectionRefusedError("refused"))
        return True

    def get_collection(self, name: str) -> SimpleNamespace:
        return SimpleNamespace(payload_schema=dict(self.schema))

    def create_payload_index(self, collection: str, name: str, field_schema: Any) -> None:
        self.created.append(name)
        self.schema[name] = field_schema


def test_opening_a_qdrant_server_store_creates_the_payload_indexes_its_collection_lacks(monkeypatch):
    monkeypatch.setattr(qdrant_store, "QdrantClient", FakeServer)
    store = QdrantStore.connect("http://qdrant:6333", "devrag")
    assert store.client.created == ["path", "commit"]
    assert store.payload_indexes() == set(INDEXED_FIELDS)


def test_a_qdrant_server_that_cannot_be_reached_at_open_is_logged_not_fatal(monkeypatch, caplog):
    monkeypatch.setattr(qdrant_store, "QdrantClient", lambda **kw: FakeServer(**kw, down=True))
    with caplog.at_level(logging.WARNING, logger="devrag.retrieval.qdrant_store"):
        store = QdrantStore.connect("http://qdrant:6333", "devrag")
    assert store.location == "http://qdrant:6333"
    assert "could not check the payload indexes of devrag" in caplog.text
