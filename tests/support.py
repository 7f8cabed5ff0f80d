"""Test support: real Git repositories, a small fake embedder, and the ingestion oracle."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from devrag.ingest.documents import decode, is_supported, parse_file
from devrag.retrieval.index import Index
from devrag.retrieval.lexical_field import LEXICAL_FIELD, field_text
from devrag.retrieval.onnx_models import MODEL_FILE, default_onnx_dir, export_dir
from devrag.retrieval.schema import chunk_id, content_hash, document_key, embed_text_for
from devrag.retrieval.store import PointFilter, StoredPoint, VectorStore

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DEVRAG_SHARED_DIR") or REPO_ROOT.parent / "shared")
RERANKER = SHARED / "models" / "ms-marco-MiniLM-L12-v2-int8dq"  # real MS MARCO cross-encoder weights
SAMPLE = REPO_ROOT / "corpus-sample"
EMBED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# The ONNX exports `make install` writes (devrag.retrieval.onnx_export), where the onnx runtime finds them.
ONNX_DIR = Path(os.environ.get("DEVRAG_ONNX_DIR") or default_onnx_dir()).expanduser()


def onnx_export_missing(model: str) -> str | None:
    """Why a test of the onnx runtime cannot run: the export `make install` writes is not there."""
    if (export_dir(ONNX_DIR, model) / MODEL_FILE).exists():
        return None
    return f"no ONNX export of {model} in {ONNX_DIR}: run `make onnx-models`"


# One query and passages for a real cross-encoder: the first passage is the one it must rank first.
ETCD_QUERY = "etcd cluster members report slow WAL fsync, leader elections keep happening"
ETCD_PASSAGES = [
    "etcd high fsync durations > Meaning: etcd_disk_wal_fsync_duration_seconds p99 is above 500ms; "
    "the disk under the etcd data directory is too slow, and members miss heartbeats.",
    "Redis memory pressure > Mitigation: raise maxmemory or evict keys; check the eviction policy.",
    "Rotating TLS certificates > Steps: issue the new certificate, roll the ingress pods, verify the chain.",
    "etcd > Defragmentation: run etcdctl defrag on one member at a time to reclaim space.",
    "Checkout API high error rate > Check the upstream dependencies and recent deploys.",
]


class HashEmbedder:
    """Deterministic bag-of-words vectors: no model, same text same vector, similar words overlap."""

    name = "test-hash-embedder"
    dim = 64
    max_tokens = 120

    def __init__(self) -> None:
        self.calls = 0
        self.embedded = 0

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        self.calls += 1
        self.embedded += len(texts)
        return [self._vector(t) for t in texts]

    def _vector(self, text: str) -> list[float]:
        vec = [0.0] * self.dim
        for word in text.lower().split():
            vec[int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dim] += 1.0
        vec[0] += 0.01  # never the zero vector, which has no cosine
        norm = math.sqrt(sum(v * v for v in vec))
        return [v / norm for v in vec]


class GitRepo:
    """A real repository in a temp dir, driven with the git command line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.mkdir(parents=True, exist_ok=True)
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        env = {
            **os.environ,
            "GIT_AUTHOR_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@example.com",
            "GIT_COMMITTER_NAME": "t",
            "GIT_COMMITTER_EMAIL": "t@example.com",
        }
        done = subprocess.run(
            ["git", *args], cwd=self.path, env=env, check=True, capture_output=True, text=True
        )
        return done.stdout.strip()

    def write(self, files: dict[str, str | bytes | None]) -> None:
        for rel, content in files.items():
            target = self.path / rel
            if content is None:
                self.git("rm", "-q", "--cached", "--ignore-unmatch", rel)
                target.unlink(missing_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8", newline="")

    def commit(self, files: dict[str, str | bytes | None], message: str = "change") -> str:
        self.write(files)
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def move(self, src: str, dst: str) -> None:
        (self.path / dst).parent.mkdir(parents=True, exist_ok=True)
        self.git("mv", src, dst)

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def blob(self, rev: str, path: str) -> str:
        return self.git("rev-parse", f"{rev}:{path}")


RUNBOOK = """# Disk full on {host}

Applies to every database host.

## Symptoms

The alert `NodeFilesystemAlmostOutOfSpace` fires for {host}.

## Mitigation

Run `journalctl --vacuum-size=500M` and check `/var/log`.
"""


def expected(repo_path: Path, commit: str, embedder: Any) -> set[tuple[str, str, int, int]]:
    """(path, content hash, start, end) of every chunk, from the target tree alone."""
    names = subprocess.run(
        ["git", "ls-tree", "-r", "--name-only", "-z", commit], cwd=repo_path, capture_output=True, check=True
    ).stdout.decode()
    out = set()
    for path in filter(None, names.split("\0")):
        data = subprocess.run(
            ["git", "show", f"{commit}:{path}"], cwd=repo_path, capture_output=True, check=True
        ).stdout
        if not data or not is_supported(path):
            continue
        try:
            text = decode(data)
        except ValueError:
            continue
        parsed = parse_file(path, text, embedder.max_tokens, embedder.count_tokens)
        for d in parsed.drafts:
            digest = content_hash(embed_text_for(parsed.title, d.headings, d.text))
            out.add((path, digest, d.start_line, d.end_line))
    return out


def held(index: Index, repo: GitRepo, name: str, rev: str = "HEAD") -> set[tuple[str, str, int, int]]:
    """What the index holds of a repository; each chunk is cited at a commit with its file as at `rev`."""
    points = list(index.store.scroll(PointFilter(repo=name)))
    state = index.repo_state(name)
    for commit, path in {(p.payload["commit"], p.payload["path"]) for p in points}:
        cited = state.cited(commit)
        assert repo.blob(cited, path) == repo.blob(rev, path), f"{path} at {cited[:12]} is not {rev}'s"
    out = {
        (p.payload["path"], p.payload["content_hash"], p.payload["start_line"], p.payload["end_line"])
        for p in points
    }
    assert len(out) == len(points), "no duplicate chunks"
    return out


def assert_matches_oracle(index: Index, repo: GitRepo, name: str, embedder: Any) -> None:
    head = repo.head()
    assert held(index, repo, name) == expected(repo.path, head, embedder)
    assert index.repo_state(name).commit == head


def blank_keyword_field(store: VectorStore, repo: str) -> None:
    """The BM25 field of every chunk of `repo` emptied, as a writer that dropped it would leave it.

    The keyword leg then answers nothing while the dense leg still does: the silent failure that
    health checks and the degraded-leg metric exist to catch.
    """
    with store.writer():
        rewrite(store, PointFilter(repo=repo), {LEXICAL_FIELD: ""})


def rewrite(store: VectorStore, flt: PointFilter, values: dict[str, Any]) -> None:
    """Overwrite payload fields of the matching points in place, as a faulty writer would."""
    points = list(store.scroll(flt, with_vectors=True))
    store.upsert([StoredPoint(p.id, p.payload | values, p.vector) for p in points])


def lexical_point(i: int, vector: list[float], words: Sequence[str]) -> StoredPoint:
    """Point `i` as the engine stores a chunk of `words`: its fields and its BM25 field."""
    chunk = {"path": f"doc{i}.md", "title": f"doc {i}", "headings": [], "text": " ".join(words)}
    return StoredPoint(str(uuid.UUID(int=i + 1)), {**chunk, LEXICAL_FIELD: field_text(chunk)}, vector)


def chunk_of(path: str, n: int = 0) -> str:
    """The id of a chunk of `path` in repository `ops`, as ingest makes it (its document's key first)."""
    return chunk_id("ops", path, "0" * 64, n)


def document_of(path: str) -> str:
    """The key of document `path` in repository `ops`, as a search ranks it."""
    return document_key("ops", path)
