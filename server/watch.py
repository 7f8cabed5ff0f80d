"""`devrag serve --watch`: re-index a repository in the background when its refs move.

On start it reconciles every repository once (a full compare with HEAD, repaired, counted in the
`devrag_reconcile_*` metrics), since watching only notices commits.

Only the refs are watched (`HEAD`, `refs/`, `packed-refs`), so saving a file does nothing and a
commit, checkout, merge or pull does. Each update goes through the same verified `ingest()` as
the CLI; searches see each verified batch as soon as it is written (see `HybridIndex`).
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import watchfiles

from devrag.ingest.git_source import GitSource, SourceError
from devrag.ingest.pipeline import IngestSummary, reingest
from devrag.ingest.reconcile import reconcile
from devrag.ingest.status import head_of
from devrag.retrieval.errors import DevragError
from devrag.retrieval.index import RepoState
from devrag.server.state import App

log = logging.getLogger(__name__)
# Events can be missed (a ref written while an update runs); every so often, compare HEADs anyway.
_RECHECK_MS = 5000


class RefWatcher:
    """A thread that keeps each indexed repository's chunks at its HEAD."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._stop = threading.Event()
        self.reconciled = threading.Event()  # set once the startup reconcile has ended, however
        self._thread = threading.Thread(target=self._run, name="devrag-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            self._watch()
        except DevragError as exc:
            log.error("--watch stopped: %s", exc)
        except Exception:  # a thread boundary: log, and leave the server answering from its index
            log.exception("--watch stopped")

    def _watch(self) -> None:
        self._reconcile()
        repos = _git_dirs(self.app.index().repos())
        if not repos:
            log.warning("--watch: no indexed repository is reachable here; nothing to watch")
            return
        log.info("watching refs of %s", ", ".join(sorted({s.name for s in repos.values()})))
        changes_seen = watchfiles.watch(
            *repos,
            watch_filter=lambda _change, path: _is_ref(path, repos),
            debounce=200,
            stop_event=self._stop,
            rust_timeout=_RECHECK_MS,
            yield_on_timeout=True,
            raise_interrupt=False,
        )
        for changes in changes_seen:
            touched = {repos[d] for _, p in changes for d in repos if _under(p, d)}
            self._sync(touched if changes else set(repos.values()))

    def _reconcile(self) -> None:
        """Once, before watching: every repository compared in full with its HEAD and repaired, as
        `devrag reconcile` does, and counted in the metrics.

        Watching compares commits, so it misses drift at an unchanged commit (chunks a store lost,
        or removed by hand). A repository a push indexed past its clone's HEAD is left alone, as
        `reindex` leaves it.
        """
        app = self.app
        try:
            index = app.index()
            states = [s for s in index.repos() if not _pushed_past_head(s)]
            drifts = reconcile(index, lambda: app.searcher().embedder, check_only=False, states=states)
        except DevragError as exc:
            log.error("--watch: reconciling the index with HEAD failed: %s", exc)
            return
        finally:
            self.reconciled.set()
        app.metrics.observe_reconcile(drifts)
        for drift in drifts:
            if drift.drifted:
                log.warning(
                    "reconciled %s: %d missing, %d stale, %d orphaned files%s",
                    drift.repo,
                    len(drift.missing),
                    len(drift.stale),
                    len(drift.orphaned),
                    f" ({drift.error})" if drift.error else ", repaired",
                )

    def _sync(self, states: set[RepoState]) -> None:
        for state in sorted(states, key=lambda s: s.name):
            if self._stop.is_set():
                return
            self._update(state)

    def _update(self, state: RepoState) -> None:
        try:
            with self.app.metrics.ingest_run("watch") as run:
                if reindex(self.app, state) is None:
                    run.outcome = None  # HEAD was already indexed: a routine recheck, not a run
        except DevragError as exc:
            log.error("re-indexing %s failed: %s", state.name, exc)


def reindex(app: App, state: RepoState, rev: str | None = None) -> IngestSummary | None:
    """Bring one repository's chunks to `rev` (default: its HEAD) through the verified ingest.

    Shared by `--watch` and the push webhooks, so both skip a commit that is already whole in the
    index and report alike. Returns None when there was nothing to do.

    Raises:
        DevragError: the repository, the revision, the models or the index failed; the index still
            holds the last complete state, and the next run redoes the work.
    """
    target = rev or head_of(state.path)
    current = app.index().repo_state(state.name)
    if target is None or (current is not None and current.commit == target and not current.in_progress):
        return None
    if rev is None and current is not None and _ahead_of_head(state, current, target):
        log.info("%s: the index is at %s, ahead of HEAD; leaving it", state.name, (current.commit or "")[:12])
        return None
    searcher = app.searcher()  # the models, and an index bound to them
    summary = reingest(searcher.index, searcher.embedder, current or state, rev=target)
    log.info(
        "re-indexed %s at %s: chunks %s (%.2f s)",
        state.name,
        summary.commit[:12],
        summary.chunks,
        summary.seconds,
    )
    return summary


def _ahead_of_head(state: RepoState, current: RepoState, head: str) -> bool:
    """Whether a push webhook indexed a commit past the clone's HEAD, which watching must not undo."""
    if current.commit is None or current.in_progress:
        return False
    try:
        source = GitSource(Path(state.path))
    except SourceError:
        return False
    try:
        return source.is_ancestor(head, current.commit)
    finally:
        source.repo.close()


def _pushed_past_head(state: RepoState) -> bool:
    head = head_of(state.path)
    return head is not None and head != state.commit and _ahead_of_head(state, state, head)


def _git_dirs(states: list[RepoState]) -> dict[str, RepoState]:
    """Each reachable repository's Git folders (a linked worktree has two) -> its state."""
    out: dict[str, RepoState] = {}
    for state in states:
        try:
            repo = GitSource(Path(state.path)).repo
        except SourceError:
            log.warning("--watch: %s is not reachable at %s; not watching it", state.name, state.path)
            continue
        for folder in {repo.git_dir, repo.common_dir}:
            out[os.path.realpath(folder)] = state
        repo.close()
    return out


def _under(path: str, folder: str) -> bool:
    return os.path.realpath(path).startswith(folder + os.sep)


def _is_ref(path: str, git_dirs: dict[str, RepoState]) -> bool:
    if path.endswith(".lock"):
        return False
    real = os.path.realpath(path)
    for folder in git_dirs:
        if _under(real, folder):
            rel = os.path.relpath(real, folder)
            return rel in ("HEAD", "packed-refs") or rel.startswith("refs" + os.sep)
    return False
