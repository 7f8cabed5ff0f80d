"""Searches while an ingest runs in the same process see the index before it or after it, never half."""

from __future__ import annotations

import threading

from devrag.ingest.pipeline import IngestOptions, ingest
from devrag.server.settings import Settings
from devrag.server.state import App, Models
from tests.support import HashEmbedder

OLD = {
    f"runbooks/r{i}.md": f"# Alert{i}\n\n## Fix\n\nrestart service{i} with the old procedure\n"
    for i in range(6)
}
NEW = {path: text.replace("old procedure", "new runbook steps") for path, text in OLD.items()}


def commits_seen(app: App) -> set[tuple[str, str]]:
    results = app.searcher().search("restart service procedure steps", k=12, mode="hybrid").results
    versions = {"old procedure": "old", "new runbook steps": "new"}
    return {(r.commit, v) for r in results for phrase, v in versions.items() if phrase in r.text}


def test_searches_during_an_ingest_answer_from_the_last_whole_index(tmp_path, git_repo):
    embedder = HashEmbedder()
    repo = git_repo("ops")
    old = repo.commit(OLD)
    app = App(Settings(index_dir=tmp_path / "index"), Models.loaded(embedder, None))
    searcher = app.searcher()
    ingest(searcher.index, embedder, repo.path, "ops")
    assert commits_seen(app) == {(old, "old")}
    new = repo.commit(NEW)
    halfway, resume = threading.Event(), threading.Event()

    def pause_after_first_batch(done: int, total: int) -> None:
        if done < total:
            halfway.set()
            resume.wait(10)

    options = IngestOptions(batch_files=2)
    writer = threading.Thread(
        target=ingest,
        args=(searcher.index, embedder, repo.path, "ops", None, options, pause_after_first_batch),
    )
    writer.start()
    assert halfway.wait(10)
    try:
        assert searcher.index.count("ops") > len(OLD), "new chunks are written beside the old ones"
        assert commits_seen(app) == {(old, "old")}
    finally:
        resume.set()
        writer.join(10)
    assert commits_seen(app) == {(new, "new")}
    app.close()
