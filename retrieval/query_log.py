"""The query log: what each search answered and what its caller later said of it, as JSON lines.

Off unless the operator turns it on (queries carry hostnames, customer names, pasted logs). When
on, every search appends a `search` record (query, k, mode, filters, the ranked documents with
their commit, score and each section's stage scores) and every `feedback` call a `feedback` record
naming the search by its `query_id`. Nothing is sent anywhere: the log is files beside the index,
read back by the feedback tool and by `devrag eval --from-log`.

The records are `devrag.retrieval.query_records`.

Records are appended under a lock file (filelock: `flock` on Unix; each thread takes it through its
own descriptor), so neither the threads of one server nor the processes sharing one index (stdio
servers, the CLI) interleave a line or rotate under each other. The log rotates by size as
`logging.handlers.RotatingFileHandler` does (`query-log.jsonl` -> `.1` -> `.2` ..., the oldest
dropped); that handler decides from its own open file, so processes sharing a file would lose lines.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock
from pydantic import ValidationError

from devrag.retrieval.errors import DevragError
from devrag.retrieval.query_records import RECORD, DocumentRef, FeedbackRecord, SearchRecord
from devrag.retrieval.search_input import InputError

LOG_NAME = "query-log.jsonl"
# A searcher waits this long for a writer holding the lock before the search goes unlogged.
_LOCK_SECONDS = 10.0


class QueryLogError(DevragError):
    """The query log is off, missing or malformed; the message names the file and line."""


def log_files(path: Path) -> list[Path]:
    """The log and its rotated files that exist, oldest first (`.N` ... `.1`, then the log)."""
    rotated: list[tuple[int, Path]] = []
    for sibling in path.parent.glob(f"{path.name}.*"):
        suffix = sibling.name.removeprefix(f"{path.name}.")
        if suffix.isdigit():
            rotated.append((int(suffix), sibling))
    files = [p for _, p in sorted(rotated, reverse=True)]
    return files + [path] if path.exists() else files


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


class QueryLog:
    """The log of one index folder: appends with size-based rotation, and finds an answer by id."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        if max_bytes < 1 or backups < 1:
            raise ValueError("a query log needs max_bytes >= 1 and backups >= 1")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        # thread_local: each thread locks through its own descriptor, so threads exclude each other
        # exactly as processes do.
        self._lock = FileLock(_lock_path(path), timeout=_LOCK_SECONDS, thread_local=True)

    def append(self, record: SearchRecord | FeedbackRecord) -> None:
        """Append one record as one line, rotating first when it would make the log too large.

        Raises:
            OSError: the folder is not writable, the disk is full, or the lock was held too long
                (filelock's Timeout is an OSError).
        """
        line = (record.model_dump_json(exclude_none=True) + "\n").encode("utf-8")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._rotate_for(len(line))
            with self.path.open("ab") as handle:
                handle.write(line)

    def _rotate_for(self, incoming: int) -> None:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return
        if size == 0 or size + incoming <= self.max_bytes:
            return
        for n in range(self.backups, 0, -1):
            source = self.path if n == 1 else self.path.with_name(f"{self.path.name}.{n - 1}")
            if source.exists():
                os.replace(source, self.path.with_name(f"{self.path.name}.{n}"))

    def find_search(self, query_id: str) -> SearchRecord | None:
        """The search record with this id, newest file first; None when it is not (or no longer) logged."""
        needle = f'"query_id":{json.dumps(query_id)}'
        with self._lock:
            for file in reversed(log_files(self.path)):
                for line in file.read_text(encoding="utf-8").splitlines():
                    if needle not in line:
                        continue
                    try:
                        record = RECORD.validate_json(line)
                    except ValidationError:
                        continue  # a damaged line names no answer the caller can have
                    if isinstance(record, SearchRecord) and record.query_id == query_id:
                        return record
        return None

    def record_feedback(
        self, query_id: str, helpful: bool, document: str | None = None, note: str | None = None
    ) -> FeedbackRecord:
        """Append feedback on a logged answer and return it; `document` is `repo:path` or a path in it.

        Raises:
            InputError: no logged answer has this id, or `document` was not in it.
            QueryLogError: the log could not be read or written.
        """
        try:
            return self._record_feedback(query_id, helpful, document, note)
        except OSError as exc:
            raise QueryLogError(f"{self.path}: feedback not recorded: {exc}.") from exc

    def _record_feedback(
        self, query_id: str, helpful: bool, document: str | None, note: str | None
    ) -> FeedbackRecord:
        search = self.find_search(query_id)
        if search is None:
            raise InputError(
                f"No search with query_id={query_id!r} is in this server's query log: pass the query_id "
                "of a search answer from this server (the log keeps recent searches only; older ones "
                "are rotated away)."
            )
        ref = _resolve(search, document) if document is not None else None
        record = FeedbackRecord(
            query_id=query_id,
            time=datetime.now(UTC),
            helpful=helpful,
            document=ref,
            note=(note or "").strip() or None,
        )
        self.append(record)
        return record


def _resolve(search: SearchRecord, document: str) -> DocumentRef:
    """The answer's document that `document` names: `repo:path` exactly, else a path of one repo."""
    named = document.strip()
    matches = [d for d in search.documents if d.name == named] or [
        d for d in search.documents if d.path == named
    ]
    listed = ", ".join(d.name for d in search.documents) or "none"
    if not matches:
        raise InputError(
            f"document={document!r} was not in that answer; its documents were: {listed}. Pass one of "
            "them as repo:path, or omit document to judge the answer as a whole."
        )
    if len(matches) > 1:
        repos = ", ".join(d.repo for d in matches)
        raise InputError(f"document={document!r} is in that answer from {repos}: pass it as repo:path.")
    return DocumentRef(repo=matches[0].repo, path=matches[0].path)


@dataclass
class LoggedQueries:
    """A log read back: its searches in order, and the feedback on each by query_id."""

    searches: list[SearchRecord] = field(default_factory=list)
    feedback: dict[str, list[FeedbackRecord]] = field(default_factory=dict)

    @property
    def orphaned_feedback(self) -> int:
        """Answers with feedback whose search record is not in the log (rotated away before it)."""
        known = {s.query_id for s in self.searches}
        return sum(1 for query_id in self.feedback if query_id not in known)


def read_log(path: Path) -> LoggedQueries:
    """A query log and its rotated files, oldest first, every line checked.

    Raises:
        QueryLogError: the log does not exist, or a line is not a query-log record (names file:line).
    """
    if not path.is_file():
        raise QueryLogError(
            f"{path}: no such query log. A server writes <index_dir>/{LOG_NAME} when DEVRAG_QUERY_LOG=1."
        )
    logged = LoggedQueries()
    for record in _records(path):
        if isinstance(record, SearchRecord):
            logged.searches.append(record)
        else:
            logged.feedback.setdefault(record.query_id, []).append(record)
    return logged


def _records(path: Path) -> Iterator[SearchRecord | FeedbackRecord]:
    with _reading(path):  # a writer rotating meanwhile would move lines between files
        contents = [(file, _text(file)) for file in log_files(path)]
    for file, text in contents:
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                yield _parse(line, f"{file}:{n}")


def _text(file: Path) -> str:
    try:
        return file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryLogError(f"{file}: cannot read the query log: {exc}.") from exc


@contextmanager
def _reading(path: Path) -> Iterator[None]:
    """Under the writers' lock; a copied log in a folder this user cannot write has no writers."""
    lock = FileLock(_lock_path(path), timeout=_LOCK_SECONDS)
    try:
        lock.acquire()
    except PermissionError:
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _parse(line: str, where: str) -> SearchRecord | FeedbackRecord:
    try:
        json.loads(line)
    except json.JSONDecodeError as exc:
        raise QueryLogError(f"{where}: not valid JSON: {exc.msg}.") from exc
    try:
        return RECORD.validate_json(line)
    except ValidationError as exc:
        error = exc.errors()[0]
        field_name = ".".join(str(part) for part in error["loc"]) or "record"
        raise QueryLogError(f"{where}: not a query-log record: {field_name}: {error['msg']}.") from exc
