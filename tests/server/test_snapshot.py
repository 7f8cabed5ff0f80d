"""Searches while an ingest runs see every verified batch at once, and each file at one version."""

from __future__ import annotations

import threading

from devrag.ingest.pipeline import EMBEDDING, IngestOptions, ingest
from devrag.server.settings import Settings
from devrag.server.state import App, Models
from tests.support import HashEmbedder

OLD = {
    f"runbooks/r{i}.md": f"# Alert{i}\n\n## Fix\n\nrestart service{i} with the old procedure\n"
    for i in range(6)
}
NEW = {path: text.replace("old procedure", "new runbook steps") for path, text in OLD.items()}


def versions_seen(app: App) -> dict[str, set[tuple[str, str]]]:
    """path -> the (commit, version) pairs of its chunks that a search returns."""
    results = app.searcher().search("restart service procedure steps", k=12, mode="hybrid").results
    versions = {"old procedure": "old", "new runbook steps": "new"}
    seen: dict[str, set[tuple[str, str]]] = {}
    for r in results:
        for section in r.sections:
            for phrase, version in versions.items():
                if phrase in section.text:
                    seen.setdefault(r.path, set()).add((r.commit, version))
    return seen


def commits_seen(app: App) -> set[tuple[str, str]]:
    return {pair for pairs in versions_seen(app).values() for pair in pairs}


class PauseAfterFirstBatch:
    """Ingest progress that holds the run once its first batch of files is written."""

    def __init__(self) -> None:
        self.halfway, self.resume = threading.Event(), threading.Event()
        self._stage = ""
        self._embedded_batches = 0

    def stage(self, name: str, total: int) -> None:
        self._stage = name

    def advance(self, steps: int) -> None:
        if self._stage == EMBEDDING:
            self._embedded_batches += 1
            if self._embedded_batches == 2:  # the first batch is written, the second about to be
                self.halfway.set()
                self.resume.wait(10)


def test_searches_during_an_ingest_see_each_verified_batch_and_each_file_at_one_version(tmp_path, git_repo):
    embedder = HashEmbedder()
    repo = git_repo("ops")
    old = repo.commit(OLD)
    app = App(Settings(index_dir=tmp_path / "index"), Models.loaded(embedder, None))
    try:
        searcher = app.searcher()
        ingest(searcher.index, embedder, repo.path, "ops")
        assert commits_seen(app) == {(old, "old")}
        new = repo.commit(NEW)
        pause = PauseAfterFirstBatch()
        options = IngestOptions(batch_files=2)
        writer = threading.Thread(
            target=ingest, args=(searcher.index, embedder, repo.path, "ops", None, options, pause)
        )
        writer.start()
        assert pause.halfway.wait(10)
        try:
            midway = versions_seen(app)
            assert commits_seen(app) == {(old, "old"), (new, "new")}, "the first batch shows at once"
            assert all(len(pairs) == 1 for pairs in midway.values()), "no file at two versions"
        finally:
            pause.resume.set()
            writer.join(10)
        assert commits_seen(app) == {(new, "new")}
    finally:
        app.close()
