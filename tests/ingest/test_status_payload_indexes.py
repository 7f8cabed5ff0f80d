"""`devrag status` reports the payload indexes that filters rely on: present, missing, or none kept."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from devrag.ingest.pipeline import ingest
from devrag.ingest.status import IndexStatus, index_status
from devrag.retrieval.qdrant_store import QdrantStore
from devrag.retrieval.store import INDEXED_FIELDS
from devrag.server import render
from tests.support import RUNBOOK

METADATA = "service, team, severity, environment, tags, alerts"  # document metadata filters
LOOKUPS = "path_dirs, path_key, alert_names, section"  # folders, runbook URLs, alert names, documents


@pytest.fixture
def printed(monkeypatch):
    """What render prints, at a width wide enough that no line wraps."""
    buffer = io.StringIO()
    monkeypatch.setattr(render, "out", Console(file=buffer, width=400, highlight=False))

    def show(status: IndexStatus) -> list[str]:
        render.index_status(status)
        return buffer.getvalue().splitlines()

    return show


@pytest.fixture
def ingested(index, git_repo, embedder):
    repo = git_repo()
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db1")})
    ingest(index, embedder, repo.path, "ops")
    return index


def test_status_lists_every_payload_index_as_present(ingested, printed):
    status = index_status(ingested)
    if isinstance(ingested.store, QdrantStore):
        assert (status.payload_indexes, status.missing_payload_indexes) == (None, [])
        expected = "payload indexes: none (qdrant-client's local mode keeps none; filters scan)"
    else:
        assert (status.payload_indexes, status.missing_payload_indexes) == (list(INDEXED_FIELDS), [])
        present = f"repo, path, doc_type, content_hash, commit, {METADATA}, {LOOKUPS}, lexical"
        expected = f"payload indexes: {present} (all present)"
    assert expected in printed(status)


def test_status_names_the_missing_payload_indexes_and_how_to_get_them_back(
    edge_index, git_repo, embedder, printed
):
    repo = git_repo()
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db1")})
    ingest(edge_index, embedder, repo.path, "ops")
    # As a store that could not create them would answer (a Qdrant server behind a read-only key).
    edge_index.store.payload_indexes = lambda: {"repo", "path"}  # type: ignore[method-assign]
    status = index_status(edge_index)
    assert status.payload_indexes == ["repo", "path"]
    missing = ["doc_type", "content_hash", "commit", *METADATA.split(", "), *LOOKUPS.split(", "), "lexical"]
    assert status.missing_payload_indexes == missing
    assert (
        f"payload indexes: repo, path; MISSING: doc_type, content_hash, commit, {METADATA}, {LOOKUPS}, "
        "lexical (filters on them scan every chunk; BM25 searches fail without `lexical`; "
        "`devrag ingest` creates them)"
    ) in printed(status)
    assert status.model_dump()["missing_payload_indexes"] == missing


def test_status_of_an_empty_index_says_nothing_about_payload_indexes(edge_index, printed):
    lines = printed(index_status(edge_index))
    assert lines[-1] == "No repositories indexed yet. Run `devrag ingest PATH`."
    assert not any(line.startswith("payload indexes") for line in lines)
