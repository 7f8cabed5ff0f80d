"""Ingest reports its work before each stage starts, then advances per file and per embedding batch."""

from __future__ import annotations

from devrag.ingest.pipeline import EMBEDDING, INDEXING, READING, RESPELLING, IngestOptions, ingest
from devrag.retrieval import lexical_field
from devrag.retrieval.index import INDEX_META_KEY
from devrag.retrieval.lexical_field import LEXICAL_VERSION
from tests.support import RUNBOOK


class Recorder:
    """A progress listener that keeps every event in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, str, int]] = []
        self.current = ""

    def stage(self, name: str, total: int) -> None:
        self.current = name
        self.events.append(("stage", name, total))

    def advance(self, steps: int) -> None:
        self.events.append(("advance", self.current, steps))

    def steps(self, name: str) -> list[int]:
        return [n for kind, stage, n in self.events if kind == "advance" and stage == name]


def test_the_work_is_counted_before_each_stage_and_advances_per_file_and_batch(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit({f"r{i}.md": RUNBOOK.format(host=f"h{i}") for i in range(5)})
    progress = Recorder()
    options = IngestOptions(batch_files=2, batch_embed=3)
    summary = ingest(index, embedder, repo.path, "ops", options=options, progress=progress)
    embedded = summary.chunks["embedded"]
    assert embedded > 3
    assert progress.events[0] == ("stage", READING, 5)
    assert progress.steps(READING) == [1] * 5
    assert progress.events[6] == ("stage", EMBEDDING, embedded)
    assert sum(progress.steps(EMBEDDING)) == embedded and max(progress.steps(EMBEDDING)) <= 3
    assert len(progress.steps(EMBEDDING)) >= embedded // 3


def test_an_edit_counts_only_the_chunk_it_embeds(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit({f"r{i}.md": RUNBOOK.format(host=f"h{i}") for i in range(3)})
    ingest(index, embedder, repo.path, "ops")
    repo.commit({"r1.md": RUNBOOK.format(host="h1").replace("500M", "1G")})
    progress = Recorder()
    summary = ingest(index, embedder, repo.path, "ops", progress=progress)
    assert ("stage", READING, 1) in progress.events
    assert ("stage", EMBEDDING, 1) in progress.events and summary.chunks["embedded"] == 1


def test_a_run_that_writes_ends_by_indexing_its_vectors_and_a_no_op_run_does_not(index, git_repo, embedder):
    repo = git_repo("ops")
    repo.commit({"r.md": RUNBOOK.format(host="h")})
    progress = Recorder()
    ingest(index, embedder, repo.path, "ops", progress=progress)
    assert progress.events[-2:] == [("stage", INDEXING, 1), ("advance", INDEXING, 1)]
    again = Recorder()
    assert ingest(index, embedder, repo.path, "ops", progress=again).mode == "noop"
    assert ("stage", INDEXING, 1) not in again.events


def test_an_index_of_older_bm25_spellings_is_rewritten_as_the_first_stage_of_the_next_ingest(
    index, git_repo, embedder, monkeypatch
):
    repo = git_repo("ops")
    repo.commit({f"r{i}.md": RUNBOOK.format(host=f"h{i}") for i in range(3)})
    with monkeypatch.context() as version_1:
        version_1.setattr(lexical_field, "COUNTED", 1)
        ingest(index, embedder, repo.path, "ops")
    index.store.put_meta(INDEX_META_KEY, {**(index.store.get_meta(INDEX_META_KEY) or {}), "lexical": "1"})
    chunks = index.count()
    progress = Recorder()
    summary = ingest(index, embedder, repo.path, "ops", progress=progress)
    assert summary.mode == "noop" and summary.chunks["respelled"] == chunks
    assert progress.events[0] == ("stage", RESPELLING, chunks) and sum(progress.steps(RESPELLING)) == chunks
    assert progress.events[-2:] == [("stage", INDEXING, 1), ("advance", INDEXING, 1)]  # its writes indexed
    assert (index.store.get_meta(INDEX_META_KEY) or {})["lexical"] == LEXICAL_VERSION
    again = Recorder()
    assert "respelled" not in ingest(index, embedder, repo.path, "ops", progress=again).chunks
    assert not again.events
