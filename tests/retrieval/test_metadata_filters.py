"""Metadata filters run in the engine on both first stages and keep exactly what brute force keeps."""

from __future__ import annotations

import math

import pytest

from devrag.ingest.pipeline import ingest
from devrag.retrieval.errors import IndexMismatchError
from devrag.retrieval.facets import metadata_values
from devrag.retrieval.index import INDEX_META_KEY, Index, RepoState
from devrag.retrieval.lexical import Bm25Index
from devrag.retrieval.lexical_field import lexical_text
from devrag.retrieval.paths import path_matches
from devrag.retrieval.schema import FILTER_FIELDS, embed_text_for, keyword
from devrag.retrieval.search import Filters, HybridIndex
from devrag.retrieval.store import INDEXED_FIELDS
from tests.conftest import open_test_store

SERVICES = ("payments", "checkout", "ledger", "search")
QUERIES = ("restart the worker after a failed deploy", "queue lag grows", "disk full on the database host")
TOLERANCE = 1e-4


def corpus() -> dict[str, str]:
    """36 documents: most with front matter, some only with a service folder, one of each kind alone."""
    files: dict[str, str] = {}
    words = ("worker", "deploy", "queue", "lag", "disk", "database", "restart", "failed", "host", "grows")
    for n in range(30):
        service = SERVICES[n % 4]
        tags = ["database", "storage"] if n % 5 == 0 else ["queue"]
        body = " ".join(words[(n + i) % len(words)] for i in range(6 + n % 4))
        files[f"runbooks/page-{n:02d}.md"] = (
            f"---\nservice: {service.title()}\nowner: team-{service}\nseverity: P{1 + n % 3}\n"
            f"environment: {'prod' if n % 3 else 'staging'}\ntags: {tags}\n"
            f"alerts: [{service.title()}Alert{n % 3}]\n---\n# Page {n} of {service}\n\n"
            f"## Steps\n\nThe {service} {body}.\n"
        )
    for n in range(5):
        files[f"runbooks/inventory/step-{n}.md"] = f"# Inventory {n}\n\n## Steps\n\nworker restart {n}\n"
    # The one document of its team: far down every unfiltered ranking.
    files["guides/rare.md"] = "---\nteam: Rare-Team\nseverity: sev0\n---\n# Rare\n\n## Notes\n\nunrelated\n"
    return files


@pytest.fixture
def searcher(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit(corpus())
    ingest(index, embedder, repo.path, "ops")
    s = HybridIndex(index, embedder, reranker=None)
    yield s
    s.close()


def allowed(searcher: HybridIndex, filters: Filters) -> dict[str, dict]:
    """Brute force: every chunk whose document passes the filters, read straight from the store."""
    wanted = filters.metadata()
    out = {}
    for p in searcher.index.store.scroll():
        values = p.payload
        ok = all(v in values[f] if isinstance(values[f], list) else values[f] == v for f, v in wanted)
        if ok and (filters.path is None or path_matches(filters.path, values["path"])):
            out[p.id] = p.payload
    return out


def best_documents(ranked: list[tuple[str, float]], chunks: dict[str, dict]) -> list[tuple[str, float]]:
    """Each document scored by its best chunk, best first: how search ranks a stage's chunks."""
    best: dict[str, float] = {}
    for cid, score in ranked:
        best.setdefault(chunks[cid]["path"], score)
    return list(best.items())


def dense_oracle(searcher: HybridIndex, query: str, chunks: dict[str, dict]) -> list[tuple[str, float]]:
    q = searcher.embedder.embed([query])[0]
    texts = {cid: embed_text_for(c["title"], c["headings"], c["text"]) for cid, c in chunks.items()}
    vectors = dict(zip(texts, searcher.embedder.embed(list(texts.values())), strict=True))
    scores = {cid: sum(a * b for a, b in zip(q, v, strict=True)) for cid, v in vectors.items()}
    return sorted(scores.items(), key=lambda pair: -pair[1])


def assert_same_documents(got, ranking: list[tuple[str, float]], what: str, k: int = 3) -> None:
    """Same top-k scores in order; every top-k document whose score is tied with no other is there."""
    expected = ranking[:k]
    assert [r.score for r in got] == pytest.approx([s for _, s in expected], abs=TOLERANCE), what
    untied = {p for p, s in expected if sum(math.isclose(s, t, abs_tol=TOLERANCE) for _, t in ranking) == 1}
    assert {r.path for r in got} >= untied, what


FILTERS = [
    Filters(service="payments"),
    Filters(service="PAYMENTS "),  # spelled as the filter's user types it
    Filters(team="team-ledger", environment="prod"),
    Filters(severity="p1", tag="database"),
    Filters(alert="CheckoutAlert2"),
    Filters(service="inventory"),  # inferred from runbooks/inventory/
    Filters(team="rare-team"),  # one document of 36: highly selective
    Filters(service="search", severity="p1", environment="staging", tag="queue"),
    # Path globs: a folder and a file are one engine condition each, other globs a list of paths.
    Filters(path="runbooks/inventory"),
    Filters(path="runbooks/inventory/"),
    Filters(path="runbooks/*", service="ledger"),
    Filters(path="guides/rare.md"),  # one file of 36
    Filters(path="runbooks/page-0[37].md"),
    Filters(path="**/step-[12].md"),
    Filters(path="*rare*"),
]


@pytest.mark.parametrize("filters", FILTERS, ids=repr)
def test_filtered_search_returns_the_brute_force_top_k_in_both_first_stages(searcher, filters):
    chunks = allowed(searcher, filters)
    assert chunks, "every filter here matches something"
    every = {p.id: p.payload for p in searcher.index.store.scroll()}
    bm25 = Bm25Index([(cid, lexical_text(c)) for cid, c in every.items()])  # statistics of the whole corpus
    for query in QUERIES:
        dense = searcher.search(query, k=3, mode="dense", filters=filters).results
        assert_same_documents(dense, best_documents(dense_oracle(searcher, query, chunks), chunks), query)
        lexical = searcher.search(query, k=3, mode="bm25", filters=filters).results
        assert_same_documents(lexical, best_documents(bm25.search(query, 1000, set(chunks)), chunks), query)
        hybrid = searcher.search(query, k=3, mode="hybrid", filters=filters).results
        assert {r.path for r in hybrid} <= {c["path"] for c in chunks.values()}


@pytest.mark.parametrize(
    "filters", [Filters(tag="nope"), Filters(path="runbooks/nope"), Filters(path="nope/*.md")], ids=repr
)
def test_a_filter_no_document_passes_returns_nothing(searcher, filters):
    assert not searcher.matches(filters)
    for mode in ("dense", "bm25", "hybrid"):
        assert searcher.search("worker", k=5, mode=mode, filters=filters).results == []


def test_results_carry_their_documents_metadata_and_whether_the_service_was_inferred(searcher):
    top = searcher.search("worker restart", k=1, mode="bm25", filters=Filters(service="inventory")).results[0]
    meta = top.metadata
    assert (meta.service, meta.service_source, meta.team) == ("inventory", "path", None)
    page = searcher.search("worker", k=1, mode="bm25", filters=Filters(alert="PaymentsAlert0")).results[0]
    assert page.metadata.service_source == "front_matter" and page.metadata.team == "team-payments"
    assert page.metadata.alerts == ["PaymentsAlert0"] and page.metadata.severity.startswith("p")


def test_metadata_values_count_documents_per_value_per_repository(index, searcher):
    values = metadata_values(index)["ops"]
    assert values["service"] == {"payments": 8, "checkout": 8, "ledger": 7, "search": 7, "inventory": 5}
    assert values["team"]["rare-team"] == 1 and "inventory" not in values["team"]
    assert values["tags"] == {"database": 6, "storage": 6, "queue": 24}
    assert values["environment"] == {"prod": 20, "staging": 10}
    assert sum(values["alerts"].values()) == 30
    assert set(values) == set(FILTER_FIELDS)


def test_every_filter_field_has_a_keyword_index():
    assert set(FILTER_FIELDS) <= set(INDEXED_FIELDS)
    assert keyword("  Team  Checkout ") == "team checkout"


def test_an_index_without_document_metadata_is_refused_with_the_commands_that_rebuild_it(tmp_path, embedder):
    store = open_test_store("edge", tmp_path / "index")
    index = Index(store, embedder.name, embedder.dim)
    index.prepare()
    meta = store.get_meta(INDEX_META_KEY)
    store.put_meta(INDEX_META_KEY, {k: v for k, v in meta.items() if k != "payload"})
    index.set_repo_state(RepoState("ops", "/srv/runbooks", "c0"))
    with pytest.raises(IndexMismatchError) as refused:
        index.check_compatible()
    message = str(refused.value)
    assert "without document metadata" in message and "`devrag ingest /srv/runbooks --name ops`" in message
    with pytest.raises(IndexMismatchError):
        index.prepare()  # nor does an ingest write into it
    store.close()
