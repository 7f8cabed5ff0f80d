"""The engine's BM25 (both backends) ranks as the reference `Bm25Index` does, on a real corpus."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from uuid import UUID, uuid5

import pytest

from devrag.ingest.documents import decode, is_supported, parse_file
from devrag.retrieval import lexical_field
from devrag.retrieval.errors import IndexMismatchError
from devrag.retrieval.index import INDEX_META_KEY, Index, RepoState
from devrag.retrieval.lexical import Bm25Index
from devrag.retrieval.lexical_field import LEXICAL_VERSION, field_text, lexical_text, query_parts
from devrag.retrieval.lexical_query import bm25_search
from devrag.retrieval.schema import (
    CHUNKER_VERSION,
    ID_VERSION,
    PAYLOAD_VERSION,
    Chunk,
    chunk_id,
    content_hash,
    embed_text_for,
    with_document_fields,
)
from devrag.retrieval.search import Filters, HybridIndex
from devrag.retrieval.store import PointFilter, ScoredId, VectorStore
from devrag.retrieval.tokenize import tokenize
from tests.conftest import open_test_store
from tests.support import SAMPLE, SHARED, HashEmbedder

CORPUS = SHARED / "data" / "runbooks-corpus" / "prometheus-operator"
GOLDEN = SHARED / "data" / "golden" / "alerts-to-runbooks.jsonl"
TOP = 10
# Engines score in float32: scores near 30 keep about six significant digits.
TOLERANCE = 1e-4

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir() or not GOLDEN.is_file(), reason="shared corpus absent")


def corpus_chunks(root: Path, embedder: HashEmbedder) -> list[Chunk]:
    """Every chunk of the folder's supported files, as ingest would write them (vectors aside)."""
    chunks = []
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        path = file.relative_to(root).as_posix()
        if not is_supported(path):
            continue
        parsed = parse_file(path, decode(file.read_bytes()), embedder.max_tokens, embedder.count_tokens)
        document = []
        for n, d in enumerate(parsed.drafts):
            digest = content_hash(embed_text_for(parsed.title, d.headings, d.text))
            document.append(
                Chunk(
                    id=chunk_id("po", path, digest, n),
                    repo="po",
                    path=path,
                    title=parsed.title,
                    headings=d.headings,
                    doc_type=parsed.doc_type,
                    text=d.text,
                    content_hash=digest,
                    start_line=d.start_line,
                    end_line=d.end_line,
                    commit="c0",
                    last_commit="c0",
                    blob_sha="b0",
                )
            )
        chunks += with_document_fields(document)
    return chunks


def written(store: VectorStore, chunks: Sequence[Chunk], embedder: HashEmbedder) -> Index:
    index = Index(store, embedder.name, embedder.dim)
    index.prepare()
    index.write(chunks, embedder.embed([c.embed_text for c in chunks]))
    return index


def reference(chunks: Sequence[Chunk]) -> Bm25Index:
    return Bm25Index([(c.id, lexical_text(c.model_dump())) for c in chunks])


def assert_same_top(
    store: VectorStore,
    oracle: Bm25Index,
    query: str,
    flt: PointFilter | None = None,
    allowed: set[str] | None = None,
) -> None:
    beyond = oracle.search(query, TOP + 5, allowed)
    expected = beyond[:TOP]
    got = [(h.id, h.score) for h in bm25_search(store, query, TOP, flt)]
    # Equal scores may come back in either order, and a tie at the cut may keep either chunk; every
    # chunk whose score is not tied with another's must be there.
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=TOLERANCE), query
    untied = {i for i, s in expected if all(abs(s - t) > TOLERANCE for j, t in beyond if j != i)}
    assert {i for i, _ in got} >= untied, query


def golden_queries() -> list[str]:
    return [json.loads(line)["query"] for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line]


@pytest.fixture(params=["edge", "qdrant-local"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[VectorStore]:
    store = open_test_store(request.param, tmp_path / "index")
    yield store
    store.close()


@needs_corpus
def test_engine_bm25_ranks_the_golden_queries_as_the_reference_does_before_and_after_deletes(
    backend: VectorStore, embedder: HashEmbedder
) -> None:
    chunks = corpus_chunks(CORPUS, embedder)
    index = written(backend, chunks, embedder)
    queries = golden_queries()
    assert_same_tops_in_one_text_query(backend, reference(chunks), queries)
    # Every third chunk gone: document count, frequencies and average length all move.
    gone, kept = chunks[::3], [c for i, c in enumerate(chunks) if i % 3]
    index.delete([c.id for c in gone])
    assert_same_tops_in_one_text_query(backend, reference(kept), queries)


def assert_same_tops_in_one_text_query(store: VectorStore, oracle: Bm25Index, queries: list[str]) -> None:
    """Each query ranks as the reference does, and one that repeats no word more than three times
    (56 of the 215 repeat one) takes a single text query: the field's spellings count it."""
    for query in queries:
        depths = _Depths(store)
        assert_same_top(depths, oracle, query)  # type: ignore[arg-type]
        if max(Counter(tokenize(query)).values()) <= 3:
            assert depths.asked == [TOP] and not depths.rescored, query


class _Depths:
    """The store, noting how many hits each unrestricted text query asked for, and which chunks
    each text query restricted to ids scored."""

    def __init__(self, store: VectorStore) -> None:
        self._store = store
        self.asked: list[int] = []
        self.rescored: list[tuple[str, str]] = []  # (text, chunk id)

    def lexical_search(self, text: str, limit: int, flt: PointFilter | None = None) -> list[ScoredId]:
        if flt is None or flt.ids is None:
            self.asked.append(limit)
        else:
            self.rescored += [(text, cid) for cid in flt.ids]
        return self._store.lexical_search(text, limit, flt)


@needs_corpus
def test_engine_bm25_proves_its_ranking_among_copies_that_tie(
    backend: VectorStore, embedder: HashEmbedder
) -> None:
    """Three copies of the corpus: every score ties three ways, so the first hits of a query that
    repeats a word more than three times rarely prove the top ten, and the search reads deeper
    until they do."""
    chunks = [
        c.model_copy(update={"id": str(uuid5(UUID(c.id), str(n))), "path": f"copy-{n}/{c.path}"})
        for n in (1, 2, 3)
        for c in corpus_chunks(CORPUS, embedder)
    ]
    written(backend, chunks, embedder)
    oracle = reference(chunks)
    queries = golden_queries()
    # Few alert texts repeat a word more than three times: also 30 of them, their first words 4 times more.
    more = [f"{q} " + " ".join(q.split()[:4] * 4) for q in queries[:30]]
    repeating = [q for q in queries + more if len(query_parts(q)) > 1]
    depths = _Depths(backend)
    for query in repeating:
        assert_same_top(depths, oracle, query)  # type: ignore[arg-type]
        assert len(set(depths.rescored)) == len(depths.rescored), "a round reuses what earlier ones scored"
        depths.rescored.clear()
    assert max(depths.asked) > TOP  # some queries needed a second round


@needs_corpus
def test_filtered_engine_bm25_keeps_the_whole_corpus_statistics(
    backend: VectorStore, embedder: HashEmbedder
) -> None:
    chunks = corpus_chunks(CORPUS, embedder)
    written(backend, chunks, embedder)
    oracle = reference(chunks)
    paths = sorted({c.path for c in chunks if "/alertmanager/" in c.path})
    allowed = {c.id for c in chunks if c.path in paths}
    for query in golden_queries()[:40]:
        assert_same_top(backend, oracle, query, PointFilter(paths=paths), allowed)


@pytest.mark.parametrize("filters", [Filters(), Filters(path="runbooks/*"), Filters(doc_type="postmortem")])
def test_the_bm25_mode_ranks_by_the_engine_as_the_reference_does(
    index: Index, embedder: HashEmbedder, filters: Filters
) -> None:
    chunks = corpus_chunks(SAMPLE, embedder)
    index.prepare()
    index.write(chunks, embedder.embed([c.embed_text for c in chunks]))
    oracle = reference(chunks)
    searcher = HybridIndex(index, embedder, reranker=None)
    found = 0
    for query in ["pods stuck in CrashLoopBackOff after a deploy", "disk full", "TLS certificate expired"]:
        got = searcher.search(query, k=3, mode="bm25", filters=filters).results
        allowed = {c.id for c in chunks if filters.doc_type in (None, c.doc_type)}
        allowed &= {c.id for c in chunks if filters.path is None or c.path.startswith("runbooks/")}
        best = {}  # each document's best chunk, in reference order
        for cid, score in oracle.search(query, 100, allowed):
            chunk = next(c for c in chunks if c.id == cid)
            best.setdefault(chunk.path, score)
        assert [r.path for r in got] == list(best)[:3], query
        assert [r.score for r in got] == pytest.approx(list(best.values())[:3], abs=TOLERANCE)
        found += len(got)
    assert found  # the filters leave something to rank
    searcher.close()


def test_the_field_spells_every_term_as_one_lowercase_word() -> None:
    text = field_text(
        {"path": "a/kube-apiserver.md", "title": "T", "headings": [], "text": "CrashLoopBackOff Ünïcode"}
    )
    assert text.split() and all(word.isalnum() and word.islower() for word in text.split())
    assert query_parts("the of") == []  # stop words only: no term, nothing to send


def test_an_index_without_the_bm25_field_is_refused_with_the_commands_that_rebuild_it(
    tmp_path: Path, embedder: HashEmbedder
) -> None:
    store = open_test_store("edge", tmp_path / "index")
    index = Index(store, embedder.name, embedder.dim)
    index.prepare()
    store.put_meta(INDEX_META_KEY, {"model": embedder.name, "dim": embedder.dim, "chunker": CHUNKER_VERSION})
    index.set_repo_state(RepoState("ops", "/srv/runbooks", "c0"))
    with pytest.raises(IndexMismatchError) as refused:
        index.check_compatible()
    message = str(refused.value)
    assert "no BM25 field" in message and str(tmp_path / "index") in message
    assert "`devrag ingest /srv/runbooks --name ops`" in message
    with pytest.raises(IndexMismatchError):
        index.prepare()  # nor does an ingest write into it
    current = {
        "chunker": CHUNKER_VERSION,
        "lexical": LEXICAL_VERSION,
        "payload": PAYLOAD_VERSION,
        "ids": ID_VERSION,
    }
    store.put_meta(INDEX_META_KEY, {"model": embedder.name, "dim": embedder.dim, **current})
    index.check_compatible()
    store.close()


def test_an_index_of_older_bm25_spellings_is_refused_to_readers_and_rewritten_by_the_next_ingest(
    tmp_path: Path, embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Version 1 spelled each term once: an ingest rewrites the field in place, vectors kept."""
    chunks = corpus_chunks(SAMPLE, embedder)
    store = open_test_store("edge", tmp_path / "index")
    with monkeypatch.context() as version_1:
        version_1.setattr(lexical_field, "COUNTED", 1)
        index = written(store, chunks, embedder)
    store.put_meta(INDEX_META_KEY, {**(store.get_meta(INDEX_META_KEY) or {}), "lexical": "1"})
    index.set_repo_state(RepoState("ops", "/srv/runbooks", "c0"))
    vectors = index.vectors_by_id([c.id for c in chunks])
    with pytest.raises(IndexMismatchError) as refused:
        index.check_compatible()
    assert "`devrag ingest /srv/runbooks --name ops`" in str(refused.value)
    assert "keeps the vectors" in str(refused.value)
    index.prepare()  # what an ingest does first
    index.check_compatible()
    assert (store.get_meta(INDEX_META_KEY) or {})["lexical"] == LEXICAL_VERSION
    assert index.vectors_by_id([c.id for c in chunks]) == vectors
    oracle = reference(chunks)
    for query in [
        "disk full disk pressure on the disk",
        "pods crash crash after a deploy deploy",
        "TLS TLS expired",
    ]:
        assert_same_top(store, oracle, query)
    store.close()


def test_a_filtered_text_query_sees_each_write_under_its_filter(
    backend: VectorStore, embedder: HashEmbedder, tmp_path: Path
) -> None:
    """The embedded store names a filter's few chunks by id for text queries (see `NAMED_MAX`); a
    write must not leave a later query with the ids read before it."""
    root = tmp_path / "repo"
    (root / "runbooks").mkdir(parents=True)
    (root / "runbooks" / "disk.md").write_text("# Disk\n\n## Fix\n\nrotate the logs on the full disk\n")
    (root / "notes.md").write_text("# Notes\n\n## Disk\n\nthe disk of the build host is full\n")
    before = corpus_chunks(root, embedder)
    index = written(backend, before, embedder)
    under = PointFilter(folder="runbooks")

    def assert_ranked(chunks: list[Chunk]) -> None:
        allowed = {c.id for c in chunks if c.path.startswith("runbooks/")}
        assert_same_top(backend, reference(chunks), "full disk", under, allowed)

    assert_ranked(before)
    (root / "runbooks" / "volume.md").write_text("# Volume\n\n## Fix\n\ngrow the disk volume when full\n")
    after = corpus_chunks(root, embedder)
    added = [c for c in after if c.path == "runbooks/volume.md"]
    index.write(added, embedder.embed([c.embed_text for c in added]))
    assert_ranked(after)
    index.delete([c.id for c in added])
    assert_ranked(before)
