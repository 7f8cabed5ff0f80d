"""CLI searches answered by the index's owner, whose models stay loaded from one command to the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devrag.retrieval.factory import open_store
from devrag.retrieval.index import Index
from devrag.retrieval.onnx_models import OnnxReranker
from devrag.retrieval.owner import OwnerPaths
from devrag.retrieval.search import Filters, HybridIndex
from devrag.retrieval.warm_search import ModelChoice, SearchCall, owner_search
from tests.server.mcp_support import RERANKER
from tests.support import ONNX_DIR, RUNBOOK

pytestmark = pytest.mark.skipif(not RERANKER.exists(), reason=f"reranker weights not found at {RERANKER}")

ROLLBACK = "# Rolling back\n\n## Rollback\n\nRun `helm rollback checkout-api 41` to go back a release.\n"
CHOICE = ModelChoice(
    "sentence-transformers/all-MiniLM-L6-v2", str(RERANKER), "onnx", "auto", ONNX_DIR, "auto"
)


@pytest.fixture
def indexed(cli, git_repo, tmp_path) -> Path:
    repo = git_repo("ops")
    repo.commit({"runbooks/disk.md": RUNBOOK.format(host="db1"), "guides/rollback.md": ROLLBACK})
    cli("ingest", str(repo.path))
    return tmp_path / "index"


def search_in_a_new_process(index_dir: Path, *args: str) -> dict:
    env = {**os.environ, "DEVRAG_INDEX_DIR": str(index_dir)}
    command = [sys.executable, "-m", "devrag.server.cli", "search", *args, "--json"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=True)
    return json.loads(done.stdout)


def ranked(answer: dict) -> list[tuple[str, float]]:
    return [(r["path"], round(r["score"], 4)) for r in answer["results"]]


def test_searches_from_new_processes_load_the_models_once_in_the_owner(indexed):
    first = search_in_a_new_process(indexed, "how do I roll back a bad release", "-k", "2")
    again = search_in_a_new_process(indexed, "how do I roll back a bad release", "-k", "2")
    plain = search_in_a_new_process(indexed, "disk full on the database host", "--no-rerank")
    assert ranked(first) == ranked(again) and first["results"][0]["path"] == "guides/rollback.md"
    assert first["reranked"] and not plain["reranked"]
    assert plain["results"][0]["path"] == "runbooks/disk.md"
    log = OwnerPaths(indexed).log.read_text()
    assert log.count("loaded embedding model") == 1 and log.count("loaded reranker") == 1, log


def test_the_owner_answers_as_a_search_in_this_process_would(indexed, real_embedder):
    store = open_store(indexed)
    call = SearchCall(CHOICE, "pods restarting after the deploy; roll back?", 2, "hybrid+rerank", Filters())
    from_owner = owner_search(store, call)
    here = HybridIndex(Index(store, real_embedder.name, real_embedder.dim), real_embedder, _reranker())
    local = here.search(call.query, call.k, call.mode, call.filters)
    assert from_owner is not None
    assert [(r.path, round(r.score, 4)) for r in from_owner.results] == [
        (r.path, round(r.score, 4)) for r in local.results
    ]
    here.close()
    store.close()


def test_an_owner_that_holds_models_still_leaves_when_idle(indexed):
    search_in_a_new_process(indexed, "helm rollback", "--no-rerank")
    socket_path = OwnerPaths(indexed).socket
    deadline = time.monotonic() + 60  # the tests' owners leave 5 s after their last client
    while os.path.exists(socket_path):
        assert time.monotonic() < deadline, "the owner's own searchers kept it from going idle"
        time.sleep(0.5)


def test_a_query_of_too_many_word_pieces_is_refused_by_the_owner_with_the_usual_message(cli, indexed):
    out = cli("search", "x9 " * 9_000, code=1)  # 27,000 characters pass; the word pieces do not
    assert "tokens; the limit is 8000" in out


def _reranker() -> OnnxReranker:
    return OnnxReranker(str(RERANKER), onnx_dir=ONNX_DIR)
