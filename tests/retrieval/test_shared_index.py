"""One index, many processes: the owner process, its writer lease, and the generation every reader checks."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
import qdrant_edge as qe

from devrag.ingest.pipeline import ingest
from devrag.retrieval.edge_store import EdgeStore
from devrag.retrieval.errors import OwnerUnavailableError
from devrag.retrieval.factory import open_store
from devrag.retrieval.index import Index
from devrag.retrieval.owned_store import OwnedStore
from devrag.retrieval.owner import OwnerPaths, recv_message, send_message
from devrag.retrieval.qdrant_store import QdrantStore
from devrag.retrieval.search import HybridIndex
from devrag.retrieval.store import INDEXED_FIELDS, StoredPoint
from tests.support import REPO_ROOT, HashEmbedder

DISK = "# Disk full\n\n## Fix\n\nrun logrotate on the database volume\n"
CERT = "# Certificate expiry\n\n## Fix\n\nrenew the ingress certificate with certbot\n"


def run_python(code: str, *args: str, wait: bool = True) -> subprocess.Popen[str]:
    """Another devrag process, as a CLI command or agent session would be."""
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    if wait:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    return process


INGEST_IN_ANOTHER_PROCESS = """
    import sys
    from pathlib import Path
    from devrag.ingest.pipeline import ingest
    from devrag.retrieval.factory import open_store
    from devrag.retrieval.index import Index
    from tests.support import HashEmbedder

    embedder = HashEmbedder()
    store = open_store(Path(sys.argv[1]))
    ingest(Index(store, embedder.name, embedder.dim), embedder, Path(sys.argv[2]), "ops")
    store.close()
"""


def paths_found(reader: HybridIndex, query: str) -> set[str]:
    return {r.path for r in reader.search(query, k=10, mode="bm25").results}


def test_a_reader_in_one_process_sees_an_ingest_in_another_at_once(tmp_path, git_repo):
    embedder = HashEmbedder()
    repo = git_repo("ops")
    repo.commit({"runbooks/disk.md": DISK})
    store = open_store(tmp_path / "index")
    index = Index(store, embedder.name, embedder.dim)
    ingest(index, embedder, repo.path, "ops")
    reader = HybridIndex(index, embedder, None)
    assert paths_found(reader, "logrotate certbot") == {"runbooks/disk.md"}

    repo.commit({"runbooks/cert.md": CERT, "runbooks/disk.md": None})
    run_python(INGEST_IN_ANOTHER_PROCESS, str(tmp_path / "index"), str(repo.path))

    assert paths_found(reader, "logrotate certbot") == {"runbooks/cert.md"}, "new found, deleted gone"
    dense = {r.path for r in reader.search("renew the ingress certificate", k=5, mode="dense").results}
    assert dense == {"runbooks/cert.md"}
    reader.close()
    store.close()


def test_two_readers_on_one_qdrant_store_never_serve_a_deleted_chunk_nor_miss_a_new_one(git_repo):
    embedder = HashEmbedder()
    # qdrant-client's local mode is one process, but this is the code path of a Qdrant server:
    # the writer and the reader share nothing but the store.
    store = QdrantStore.connect(":memory:", "shared")
    writer = Index(store, embedder.name, embedder.dim)
    reader = HybridIndex(Index(store, embedder.name, embedder.dim), embedder, None)
    repo = git_repo("ops")
    repo.commit({"runbooks/disk.md": DISK})
    ingest(writer, embedder, repo.path, "ops")
    assert paths_found(reader, "logrotate certbot") == {"runbooks/disk.md"}

    repo.commit({"runbooks/cert.md": CERT, "runbooks/disk.md": None})
    ingest(writer, embedder, repo.path, "ops")

    assert paths_found(reader, "logrotate certbot") == {"runbooks/cert.md"}
    hybrid = reader.search("logrotate database volume certbot", k=5, mode="hybrid").results
    assert {r.path for r in hybrid} == {"runbooks/cert.md"}
    reader.close()
    store.close()


def test_every_verified_write_moves_the_generation(index):
    before = index.generation()
    index.prepare()
    point = StoredPoint("00000000-0000-0000-0000-000000000001", {"repo": "r"}, [1.0] * index.dim)
    index.store.upsert([point])  # a raw store write is not a verified write: no new generation
    assert index.generation() == before
    index.delete([point.id])
    assert index.generation() != before


def test_a_killed_owner_is_replaced_and_the_index_is_still_there(tmp_path):
    store = OwnedStore(tmp_path / "index")
    store.ensure_collection(4)
    store.put_meta("marker", {"value": 1})
    first = store.owner_pid()
    os.kill(first, signal.SIGKILL)
    assert store.get_meta("marker") == {"value": 1}, "the call is sent again to a new owner"
    assert store.owner_pid() != first
    store.close()


def test_the_writer_lease_is_one_at_a_time_and_freed_when_its_holder_dies(tmp_path):
    index_dir = tmp_path / "index"
    holder = run_python(
        """
        import sys, time
        from pathlib import Path
        from devrag.retrieval.owned_store import OwnedStore
        with OwnedStore(Path(sys.argv[1])).writer():
            print("held", flush=True)
            time.sleep(600)
        """,
        str(index_dir),
        wait=False,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    store = OwnedStore(index_dir)
    waiter = run_python(
        """
        import sys
        from pathlib import Path
        from devrag.retrieval.owned_store import OwnedStore
        with OwnedStore(Path(sys.argv[1])).writer():
            print("acquired", flush=True)
        """,
        str(index_dir),
        wait=False,
    )
    with pytest.raises(subprocess.TimeoutExpired):
        waiter.wait(timeout=1.5)
    holder.kill()
    holder.communicate()
    out, err = waiter.communicate(timeout=30)
    assert out.strip() == "acquired", err
    store.close()


def test_an_idle_owner_leaves_and_the_next_client_starts_another(tmp_path, monkeypatch):
    monkeypatch.setenv("DEVRAG_OWNER_IDLE_SECONDS", "0.5")
    paths = OwnerPaths(tmp_path / "index")
    store = OwnedStore(paths.index_dir)
    first = store.owner_pid()
    store.close()
    deadline = time.monotonic() + 20
    while Path(paths.socket).exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not Path(paths.socket).exists(), "the owner left after its idle timeout"
    again = OwnedStore(paths.index_dir)
    assert again.owner_pid() != first
    again.close()


def test_an_index_opened_without_its_payload_indexes_gets_them_back(tmp_path):
    config = qe.EdgeConfig(vectors=qe.EdgeVectorParams(size=4, distance=qe.Distance.Cosine))
    bare = qe.EdgeShard.create(str(tmp_path / "index" / "shard"), config)  # killed before its indexes
    bare.close()
    store = EdgeStore(tmp_path / "index")
    assert set(INDEXED_FIELDS) <= set(store.shard.info().payload_schema)
    store.close()


@pytest.mark.parametrize("version", ["0.0.1", None], ids=["another-version", "before-version-calls"])
def test_an_owner_running_other_code_is_named_not_used(tmp_path, version):
    """An owner left from before an upgrade: the client says which process and how to replace it."""
    paths = OwnerPaths(tmp_path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(paths.socket)
    listener.listen(1)

    def old_owner() -> None:
        conn, _ = listener.accept()
        with conn:
            for _ in range(2):
                method, _args = recv_message(conn)
                if method == "ping":
                    send_message(conn, ("ok", 4242))
                elif version is None:
                    send_message(conn, ("error", ValueError(f"unknown store call {method!r}")))
                else:
                    send_message(conn, ("ok", version))

    thread = threading.Thread(target=old_owner, daemon=True)
    thread.start()
    with pytest.raises(OwnerUnavailableError, match=r"\(pid 4242\) runs devrag .*`kill 4242`"):
        OwnedStore(tmp_path).count()
    thread.join(5)
    listener.close()


def test_an_owner_reads_the_vectors_of_the_index_it_opens_while_it_answers(tmp_path):
    """The owner scans the vectors slice by slice after it opens a shard (the first searches after
    a load read them cold); the slices cover every point, and calls are answered meanwhile."""
    index_dir = tmp_path / "index"
    store = EdgeStore(index_dir)
    store.ensure_collection(4)
    points = [
        StoredPoint(str(uuid.UUID(int=n + 1)), {"repo": "r"}, [1.0, n % 7, n % 5, 1.0]) for n in range(25_000)
    ]
    store.upsert(points)
    parts = store.warm_slices()
    sliced = [
        qe.CountRequest(exact=True, filter=qe.Filter(must=[qe.SliceCondition(parts, i)]))
        for i in range(parts)
    ]
    assert parts == 3 and sum(store.shard.count(request) for request in sliced) == len(points)
    store.close()

    owned = OwnedStore(index_dir)
    assert owned.count() == len(points)  # answered whether or not the scan is done
    deadline = time.monotonic() + 60
    while (seconds := owned.warm_seconds()) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert seconds is not None and seconds >= 0
    assert "read the vectors of 3 slices" in OwnerPaths(index_dir).log.read_text()
    owned.close()
