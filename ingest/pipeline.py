"""`devrag ingest`: bring one repository's chunks in the index to a commit, verified, incrementally."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from devrag.ingest.documents import Parsed, decode, parse_file, skip_reason
from devrag.ingest.git_source import GitSource, TreeEntry
from devrag.ingest.identity import Clone, checked_state
from devrag.ingest.plan import Plan, make_plan
from devrag.retrieval.index import Index, RepoState, SkippedRecord
from devrag.retrieval.models import Embedder
from devrag.retrieval.schema import Chunk, chunk_id, content_hash, embed_text_for

Progress = Callable[[int, int], None]


class IngestOptions(BaseModel):
    max_file_bytes: int = 1_000_000
    batch_files: int = 64


class SkippedFile(BaseModel):
    path: str
    reason: str


class IngestSummary(BaseModel):
    """What one run did; `--json` prints exactly this."""

    repo: str
    commit: str
    previous_commit: str | None
    mode: str
    files: dict[str, int]
    skipped: list[SkippedFile]
    chunks: dict[str, int]
    verified: bool
    seconds: float


def ingest(
    index: Index,
    embedder: Embedder,
    repo_path: Path,
    name: str | None = None,
    rev: str | None = None,
    options: IngestOptions | None = None,
    progress: Progress | None = None,
    full: bool = False,
) -> IngestSummary:
    """Index `rev` (default HEAD) of the repository at `repo_path` under `name` (default: folder name).

    New chunks are written before old ones are deleted, every write is read back, and the
    repository's indexed commit advances only when all of that succeeded; a failed or killed run is
    redone by the next one. `full` compares the whole tree with the index instead of diffing.
    """
    started = time.perf_counter()
    source = GitSource(repo_path)
    target = source.resolve(rev)
    name = name or source.root.name
    options = options or IngestOptions()
    clone = Clone.of(source, target)
    with index.lock:
        index.prepare()
        state = checked_state(index, name, source, clone)
        plan = make_plan(source, index, state, target, options.max_file_bytes, full)
        run = _Run(index, embedder, source, name, plan, options, progress)
        base = state or RepoState(name, clone.path, None)
        if plan.mode != "noop":
            index.set_repo_state(clone.stamp(replace(base, in_progress=target)))
            run.apply()
            index.stamp_commit(name, target)
        # Also after a no-op: the state records where the repository was last ingested from.
        final = clone.stamp(replace(base, commit=target, in_progress=None))
        if final != state:
            index.set_repo_state(final)
    return run.summary(_commit(state), time.perf_counter() - started)


def _commit(state: RepoState | None) -> str | None:
    return state.commit if state else None


class _Run:
    """One ingest run's work and tallies."""

    def __init__(
        self,
        index: Index,
        embedder: Embedder,
        source: GitSource,
        repo: str,
        plan: Plan,
        options: IngestOptions,
        progress: Progress | None,
    ) -> None:
        self.index, self.embedder, self.source = index, embedder, source
        self.repo, self.plan, self.options, self.progress = repo, plan, options, progress
        self.files: Counter[str] = Counter()
        self.chunks: Counter[str] = Counter()
        self.skipped: list[SkippedFile] = []
        self.records: dict[str, SkippedRecord] = {}

    def apply(self) -> None:
        paths = sorted(self.plan.upsert)
        last = self.source.last_commits(self.plan.target, paths)
        step = self.options.batch_files
        for start in range(0, len(paths), step):
            batch = paths[start : start + step]
            self._sync(batch, [c for p in batch for c in self._chunks_of(p, last.get(p, ""))])
            if self.progress:
                self.progress(min(start + step, len(paths)), len(paths))
        gone = self.index.chunks_of(self.repo, self.plan.remove)
        self.index.delete(list(gone))
        self.chunks["deleted"] += len(gone)
        self.files["deleted"] = self.plan.deleted
        self._save_skipped()

    def _save_skipped(self) -> None:
        """Records of this run's skipped files, plus earlier ones for files it left untouched."""
        tree = self.plan.tree
        kept = {
            path: record
            for path, record in self.index.skipped_files(self.repo).items()
            if path not in self.plan.upsert and path in tree and tree[path].blob_sha == record.blob_sha
        }
        self.index.set_skipped_files(self.repo, {**kept, **self.records})

    def _chunks_of(self, path: str, last_commit: str) -> list[Chunk]:
        entry = self.plan.tree[path]
        parsed = self._parse(entry)
        if parsed is None:
            return []
        self.files[self.plan.upsert[path]] += 1
        seen: Counter[str] = Counter()
        out = []
        for draft in parsed.drafts:
            digest = content_hash(embed_text_for(parsed.title, draft.headings, draft.text))
            out.append(
                Chunk(
                    id=chunk_id(self.repo, path, digest, seen[digest]),
                    repo=self.repo,
                    path=path,
                    title=parsed.title,
                    headings=draft.headings,
                    doc_type=parsed.doc_type,  # type: ignore[arg-type]
                    text=draft.text,
                    content_hash=digest,
                    start_line=draft.start_line,
                    end_line=draft.end_line,
                    commit=self.plan.target,
                    last_commit=last_commit,
                    blob_sha=entry.blob_sha,
                    symbol=draft.symbol,
                )
            )
            seen[digest] += 1
        return out

    def _parse(self, entry: TreeEntry) -> Parsed | None:
        """The file's chunks, or None after recording why it has none."""
        reason = skip_reason(entry, self.options.max_file_bytes)
        read = reason is None
        parsed = None
        if read:
            try:
                text = decode(self.source.read_blob(entry.blob_sha))
                count = self.embedder.count_tokens
                parsed = parse_file(entry.path, text, self.embedder.max_tokens, count)
            except ValueError as exc:
                reason = str(exc)
        if parsed is not None and parsed.drafts:
            return parsed
        reason = reason or "no indexable text"
        self.skipped.append(SkippedFile(path=entry.path, reason=reason))
        self.records[entry.path] = SkippedRecord(entry.blob_sha, reason, read)
        self.files["skipped"] += 1
        return None

    def _sync(self, paths: Sequence[str], chunks: list[Chunk]) -> None:
        """Write this batch's new and changed chunks, then delete the chunks they replace."""
        existing = self.index.chunks_of(self.repo, list(paths))
        fresh = {c.id: c for c in chunks}
        changed = [c for c in chunks if _differs(existing.get(c.id), c)]
        self.chunks["unchanged"] += len(chunks) - len(changed)
        if changed:
            self.index.write(changed, self._vectors(changed))
        self.chunks["written"] += len(changed)
        stale = [i for i in existing if i not in fresh]
        self.index.delete(stale)
        self.chunks["deleted"] += len(stale)

    def _vectors(self, chunks: list[Chunk]) -> list[list[float]]:
        """Reuse a stored vector for any text already embedded; embed only what is new."""
        by_hash = self.index.vectors_by_hash(sorted({c.content_hash for c in chunks}))
        texts = {c.content_hash: c.embed_text for c in chunks if c.content_hash not in by_hash}
        missing = sorted(texts.items())
        if missing:
            vectors = self.embedder.embed([text for _, text in missing])
            by_hash.update(zip([h for h, _ in missing], vectors, strict=True))
        self.chunks["embedded"] += len(missing)
        self.chunks["reused"] += len(chunks) - len(missing)
        return [by_hash[c.content_hash] for c in chunks]

    def summary(self, previous: str | None, seconds: float) -> IngestSummary:
        files = {k: self.files[k] for k in ("added", "modified", "deleted", "renamed", "skipped")}
        files["unchanged"] = self.plan.unchanged
        chunk_keys = ("written", "embedded", "reused", "unchanged", "deleted")
        return IngestSummary(
            repo=self.repo,
            commit=self.plan.target,
            previous_commit=previous,
            mode=self.plan.mode,
            files=files,
            skipped=self.skipped,
            chunks={k: self.chunks[k] for k in chunk_keys},
            verified=True,
            seconds=round(seconds, 3),
        )


def _differs(stored: dict[str, Any] | None, chunk: Chunk) -> bool:
    """Whether a stored payload must be rewritten; the commit stamp is refreshed separately."""
    if stored is None:
        return True
    fresh = chunk.model_dump()
    return any(stored.get(k) != v for k, v in fresh.items() if k != "commit")
