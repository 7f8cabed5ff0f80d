"""`devrag ingest`: bring one repository's chunks in the index to a commit, verified, incrementally."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any, Protocol

from opentelemetry import trace
from pydantic import BaseModel, Field

from devrag.ingest.documents import MAX_FILE_CHUNKS, Parsed, decode, parse_file, skip_reason
from devrag.ingest.git_source import GitSource, TreeEntry, locate
from devrag.ingest.identity import Clone, checked_state
from devrag.ingest.plan import Plan, make_plan
from devrag.retrieval.index import FileScope, Index, RepoState
from devrag.retrieval.models import Embedder
from devrag.retrieval.review_age import commit_date
from devrag.retrieval.schema import Chunk, chunk_id, content_hash, embed_text_for, with_document_fields
from devrag.retrieval.search_input import check_glob
from devrag.retrieval.skip_records import SkippedRecord


class StageProgress(Protocol):
    """Where a run reports its work: each stage's size before it starts, then the steps done."""

    def stage(self, name: str, total: int) -> None: ...

    def advance(self, steps: int) -> None: ...


class _Silent:
    def stage(self, name: str, total: int) -> None:
        pass

    def advance(self, steps: int) -> None:
        pass


READING, EMBEDDING, INDEXING = "reading files", "embedding chunks", "indexing vectors"
RESPELLING = "rewriting chunks as this version stores them"
# A no-op until an OpenTelemetry SDK is configured (devrag.server.tracing, on request).
_tracer = trace.get_tracer("devrag.ingest")


class IngestOptions(BaseModel):
    max_file_bytes: int = 1_000_000
    # Chunks kept per file; a file cut there is named in the summary's warnings.
    max_file_chunks: int = MAX_FILE_CHUNKS
    batch_files: int = 64
    # Texts per embedding call: small enough that progress moves every second or so on a CPU.
    batch_embed: int = 64


@dataclass
class _Batch:
    """One batch of files: its chunks, the ones to write, and the stored ones they replace."""

    paths: list[str]
    chunks: list[Chunk]
    changed: list[Chunk]
    stale: list[str]


class SkippedFile(BaseModel):
    path: str
    reason: str


class RedactedFile(BaseModel):
    """A file whose secrets were replaced before indexing: how many values, of which kinds."""

    path: str
    count: int
    kinds: dict[str, int]


class IngestSummary(BaseModel):
    """What one run did; `--json` prints exactly this."""

    repo: str
    commit: str
    previous_commit: str | None
    mode: str
    files: dict[str, int]
    skipped: list[SkippedFile]
    # Files indexed with a caveat: chunks cut at the per-file limit, front matter ignored.
    warnings: list[SkippedFile] = Field(default_factory=list)
    # Files read in this run whose secrets were replaced by `[REDACTED:<kind>]` (see `redaction`).
    redacted: list[RedactedFile] = Field(default_factory=list)
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
    progress: StageProgress | None = None,
    full: bool = False,
    scope: FileScope | None = None,
) -> IngestSummary:
    """Index `rev` (default HEAD) of the repository at `repo_path` under `name` (default: folder name).

    `repo_path` may be a folder inside the repository: only that subtree is indexed, under the
    folder's name, with paths still relative to the repository root so citations and `git show`
    work. `scope` narrows further (include and exclude globs; its subtree is taken within
    `repo_path`), and is recorded, so reconcile and `--watch` index the same files.
    New chunks are written before old ones are deleted, every write is read back, and the
    repository's indexed commit advances only when all of that succeeded; a failed or killed run is
    redone by the next one. `full` compares the whole tree with the index instead of diffing.
    `progress` hears the files to read and the chunks to embed before each stage starts.
    """
    started = time.perf_counter()
    root, folder = locate(Path(repo_path))
    scope = _within(folder, scope or FileScope())
    for glob in (*scope.include, *scope.exclude):
        check_glob(glob)
    source = GitSource(root)
    target = source.resolve(rev)
    name = name or PurePosixPath(scope.subtree).name or source.root.name
    options = options or IngestOptions()
    clone = Clone.of(source, target)
    attributes = {"devrag.repo": name, "devrag.commit": target}
    with _tracer.start_as_current_span("ingest", attributes=attributes) as span, index.lock:
        respelled = _prepare(index, progress or _Silent())
        state = checked_state(index, name, source, clone)
        with _tracer.start_as_current_span("ingest.plan") as plan_span:
            plan = make_plan(source, index, state, target, options.max_file_bytes, full, scope)
            plan_span.set_attributes({"devrag.files": len(plan.upsert), "devrag.removed": len(plan.remove)})
        span.set_attribute("devrag.ingest_mode", plan.mode)
        run = _Run(index, embedder, source, name, plan, options, progress)
        run.chunks["respelled"] = respelled
        base = replace(
            state or RepoState(name, clone.path, None), scope=scope, max_file_bytes=options.max_file_bytes
        )
        if plan.mode != "noop":
            index.set_repo_state(clone.stamp(replace(base, in_progress=target)))
            run.apply()
        # Also after a no-op: the state records where the repository was last ingested from.
        final = clone.stamp(replace(base, commit=target, in_progress=None, files=plan.files))
        if final != state:
            index.set_repo_state(final)
        run.optimize()
        span.set_attributes({f"devrag.chunks.{k}": v for k, v in run.chunks.items()})
    return run.summary(_commit(state), time.perf_counter() - started)


def _prepare(index: Index, progress: StageProgress) -> int:
    """Ready the index for writes; chunks an older version stored otherwise (BM25 spelling, ids) are
    rewritten first, as a stage. How many chunks were rewritten."""
    pending = index.respell_pending()
    if pending:
        progress.stage(RESPELLING, pending)
    index.prepare(progress.advance)
    return pending


def _within(folder: str, scope: FileScope) -> FileScope:
    """The scope with its subtree read from `folder`, where the ingested path lies in the repository."""
    return replace(scope, subtree="/".join(part for part in (folder, scope.subtree) if part))


def reingest(
    index: Index,
    embedder: Embedder,
    state: RepoState,
    rev: str | None = None,
    options: IngestOptions | None = None,
    full: bool = False,
    progress: StageProgress | None = None,
) -> IngestSummary:
    """Ingest a known repository again, from where it was last ingested, with the files it chose."""
    path = Path(state.path)
    return ingest(
        index, embedder, path, state.name, rev, recorded(options, state), progress, full, state.scope
    )


def recorded(options: IngestOptions | None, state: RepoState) -> IngestOptions:
    """The options with the size limit the repository was last ingested with, where one is recorded:
    a limit given once on the command line holds for every later run that repeats that ingest."""
    options = options or IngestOptions()
    if state.max_file_bytes is None:
        return options
    return options.model_copy(update={"max_file_bytes": state.max_file_bytes})


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
        progress: StageProgress | None,
    ) -> None:
        self.index, self.embedder, self.source = index, embedder, source
        self.repo, self.plan, self.options = repo, plan, options
        self.progress: StageProgress = progress or _Silent()
        self.files: Counter[str] = Counter()
        self.chunks: Counter[str] = Counter()
        self.skipped: list[SkippedFile] = []
        self.records: dict[str, SkippedRecord] = {}
        self.warnings: list[SkippedFile] = []
        self.redacted: list[RedactedFile] = []

    def apply(self) -> None:
        """Read every file first, so the work to embed is known; then embed and write batch by batch."""
        with _tracer.start_as_current_span("ingest.read") as span:
            read = self._read()
            span.set_attribute("devrag.files", sum(len(paths) for paths, _ in read))
        with _tracer.start_as_current_span("ingest.compare") as span:
            batches = [self._compare(paths, chunks) for paths, chunks in read]
            changed = sorted({c.content_hash for b in batches for c in b.changed})
            vectors = self.index.vectors_by_hash(changed)
            span.set_attributes({"devrag.chunks.changed": len(changed), "devrag.chunks.reused": len(vectors)})
        self.progress.stage(EMBEDDING, len(changed) - len(vectors))
        with _tracer.start_as_current_span("ingest.write") as span:  # embedding, then verified writes
            for batch in batches:
                self._sync(batch, vectors)
            span.set_attribute("devrag.chunks.written", self.chunks["written"])
        with _tracer.start_as_current_span("ingest.delete") as span:
            gone = self.index.chunks_of(self.repo, self.plan.remove)
            self.index.delete(list(gone))
            span.set_attribute("devrag.chunks.deleted", len(gone))
        self.chunks["deleted"] += len(gone)
        self.files["deleted"] = self.plan.deleted
        self._save_skipped()

    def optimize(self) -> None:
        """Index what this run wrote, once its commit is recorded: a kill here loses no work.

        A run that changed nothing leaves the index as it found it; what a killed run left
        unindexed is indexed by the next run that writes.
        """
        if not (self.chunks["written"] or self.chunks["deleted"] or self.chunks["respelled"]):
            return
        with _tracer.start_as_current_span("ingest.optimize") as span:
            self.progress.stage(INDEXING, 1)
            span.set_attribute("devrag.rebuilt", self.index.optimize())
            self.progress.advance(1)

    def _read(self) -> list[tuple[list[str], list[Chunk]]]:
        """Each batch of files to write, with its chunks; progress advances per file."""
        paths = sorted(self.plan.upsert)
        last = self.source.last_commits(self.plan.target, paths, self.plan.since)
        dates = {sha: commit_date(t) for sha, t in self.source.commit_times(last.values()).items()}
        self.progress.stage(READING, len(paths))
        step = self.options.batch_files
        batches = []
        for start in range(0, len(paths), step):
            batch = paths[start : start + step]
            chunks = []
            for path in batch:
                chunks += self._chunks_of(path, last.get(path, ""), dates.get(last.get(path, "")))
                self.progress.advance(1)
            batches.append((batch, chunks))
        return batches

    def _compare(self, paths: list[str], chunks: list[Chunk]) -> _Batch:
        existing = self.index.chunks_of(self.repo, paths)
        fresh = {c.id for c in chunks}
        changed = [c for c in chunks if _differs(existing.get(c.id), c)]
        return _Batch(paths, chunks, changed, [i for i in existing if i not in fresh])

    def _save_skipped(self) -> None:
        """Records of this run's skipped files, plus earlier ones for files it left untouched.

        Only the shares of the records that this run's files fall in are read, and written only
        when they changed: an edit's run would otherwise read, rewrite and read back every record
        of a large repository.
        """
        touched = [*self.plan.upsert, *self.plan.remove, *self.records]
        earlier = self.index.skipped_files(self.repo, near=touched)
        kept = {path: record for path, record in earlier.items() if self.plan.untouched(path)}
        records = {**kept, **self.records}
        if records != earlier:
            self.index.set_skipped_files(self.repo, records, near=touched)

    def _chunks_of(self, path: str, last_commit: str, last_commit_date: str | None) -> list[Chunk]:
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
                    last_commit_date=last_commit_date,
                    blob_sha=entry.blob_sha,
                    symbol=draft.symbol,
                    alert_rules=parsed.rules,
                    **parsed.meta.model_dump(),
                )
            )
            seen[digest] += 1
        return with_document_fields(out)

    def _parse(self, entry: TreeEntry) -> Parsed | None:
        """The file's chunks, or None after recording why it has none."""
        reason = skip_reason(entry, self.options.max_file_bytes)
        read = reason is None
        parsed = None
        if read:
            try:
                text = decode(self.source.read_blob(entry.blob_sha))
                count = self.embedder.count_tokens
                max_chunks = self.options.max_file_chunks
                parsed = parse_file(entry.path, text, self.embedder.max_tokens, count, max_chunks)
            except ValueError as exc:
                reason = str(exc)
        if parsed is not None and parsed.drafts:
            self.warnings += [SkippedFile(path=entry.path, reason=w) for w in parsed.warnings]
            if parsed.redacted:
                count = sum(parsed.redacted.values())
                self.redacted.append(RedactedFile(path=entry.path, count=count, kinds=parsed.redacted))
            return parsed
        reason = reason or "no indexable text"
        self.skipped.append(SkippedFile(path=entry.path, reason=reason))
        self.records[entry.path] = SkippedRecord(entry.blob_sha, reason, read)
        self.files["skipped"] += 1
        return None

    def _sync(self, batch: _Batch, vectors: dict[str, list[float]]) -> None:
        """Write this batch's new and changed chunks, then delete the chunks they replace."""
        self.chunks["unchanged"] += len(batch.chunks) - len(batch.changed)
        if batch.changed:
            self.index.write(batch.changed, self._vectors(batch.changed, vectors))
        self.chunks["written"] += len(batch.changed)
        self.index.delete(batch.stale)
        self.chunks["deleted"] += len(batch.stale)

    def _vectors(self, chunks: list[Chunk], known: dict[str, list[float]]) -> list[list[float]]:
        """Reuse a vector for any text already embedded (stored or this run); embed only what is new."""
        texts = {c.content_hash: c.embed_text for c in chunks if c.content_hash not in known}
        missing = sorted(texts.items())
        step = self.options.batch_embed
        for start in range(0, len(missing), step):
            part = missing[start : start + step]
            vectors = self.embedder.embed([text for _, text in part])
            known.update(zip([h for h, _ in part], vectors, strict=True))
            self.progress.advance(len(part))
        self.chunks["embedded"] += len(missing)
        self.chunks["reused"] += len(chunks) - len(missing)
        return [known[c.content_hash] for c in chunks]

    def summary(self, previous: str | None, seconds: float) -> IngestSummary:
        files = {k: self.files[k] for k in ("added", "modified", "deleted", "renamed", "skipped")}
        files["unchanged"] = self.plan.unchanged
        chunk_keys = ("written", "embedded", "reused", "unchanged", "deleted")
        chunk_keys += ("respelled",) if self.chunks["respelled"] else ()
        return IngestSummary(
            repo=self.repo,
            commit=self.plan.target,
            previous_commit=previous,
            mode=self.plan.mode,
            files=files,
            skipped=self.skipped,
            warnings=self.warnings,
            redacted=self.redacted,
            chunks={k: self.chunks[k] for k in chunk_keys},
            verified=True,
            seconds=round(seconds, 3),
        )


def _differs(stored: dict[str, Any] | None, chunk: Chunk) -> bool:
    """Whether a stored payload must be rewritten.

    Not for its commit alone: a chunk records the commit its file was read at, and results cite the
    repository's indexed commit, which holds the same file (`RepoState.cited`). So an ingest writes
    only what changed, at any index size, rather than stamp every chunk.
    """
    if stored is None:
        return True
    fresh = chunk.model_dump()
    return any(stored.get(k) != v for k, v in fresh.items() if k != "commit")
