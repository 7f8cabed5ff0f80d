"""Loaders for evaluation sets: devrag golden JSONL files and BEIR folders.

Both are turned into the same :class:`GoldenQuery` shape (a query plus the *paths* of its
relevant pages) so one evaluation loop and :mod:`devrag.eval.metrics` serve both. BEIR
documents are materialised as Markdown files so they go through the real ingest pipeline
rather than a test-only shortcut.

Malformed input raises ``ValueError`` naming the file and line: evaluation data is hand- or
script-made and a silently skipped line would quietly change the scores.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "BeirSet",
    "GoldenQuery",
    "beir_doc_path",
    "beir_markdown",
    "beir_queries",
    "load_beir",
    "load_golden",
    "materialise_beir",
]


@dataclass(frozen=True)
class GoldenQuery:
    """One evaluation query and the paths (relative to the corpus root) that answer it."""

    id: str
    query: str
    relevant: list[str]
    verbatim: bool = False
    """The query text occurs verbatim in a relevant page (an "easy", lexically leaked query)."""
    kind: str | None = None
    """``summary`` / ``description`` for alert sets; None when the source has no such notion."""
    alert: str | None = None
    """The alert's name in alert sets: with `--as-alert` it is put before the text, as an agent has
    the alert; never read by the ranking."""


def _read_jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each non-blank line, failing loudly on bad JSON."""
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from exc
            if not isinstance(obj, dict):
                kind = type(obj).__name__
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {kind}")
            yield lineno, obj


def _require_str(obj: dict[str, Any], key: str, where: str) -> str:
    if key not in obj:
        raise ValueError(f"{where}: missing field {key!r}")
    value = obj[key]
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: field {key!r} must be a non-empty string, got {value!r}")
    return value


def _parse_relevant(obj: dict[str, Any], where: str) -> list[str]:
    if "relevant" not in obj:
        raise ValueError(f"{where}: missing field 'relevant'")
    relevant = obj["relevant"]
    if not isinstance(relevant, list):
        raise ValueError(f"{where}: field 'relevant' must be a list of paths, got {relevant!r}")
    if not relevant:
        raise ValueError(f"{where}: field 'relevant' is an empty list")
    if not all(isinstance(p, str) and p for p in relevant):
        raise ValueError(f"{where}: field 'relevant' must hold non-empty path strings")
    return relevant


def _parse_golden(obj: dict[str, Any], where: str) -> GoldenQuery:
    verbatim = obj.get("verbatim_in_relevant", False)
    if not isinstance(verbatim, bool):
        raise ValueError(f"{where}: field 'verbatim_in_relevant' must be a boolean")
    kind = obj.get("query_kind")
    if kind is not None and not isinstance(kind, str):
        raise ValueError(f"{where}: field 'query_kind' must be a string")
    alert = obj.get("alert")
    if alert is not None and not isinstance(alert, str):
        raise ValueError(f"{where}: field 'alert' must be a string")
    return GoldenQuery(
        id=_require_str(obj, "id", where),
        query=_require_str(obj, "query", where),
        relevant=_parse_relevant(obj, where),
        verbatim=verbatim,
        kind=kind,
        alert=alert,
    )


def load_golden(path: Path) -> list[GoldenQuery]:
    """Load a golden JSON-lines file; ids must be unique so per-query reports can be joined."""
    queries: list[GoldenQuery] = []
    first_seen: dict[str, int] = {}
    for lineno, obj in _read_jsonl(path):
        where = f"{path}:{lineno}"
        query = _parse_golden(obj, where)
        if query.id in first_seen:
            raise ValueError(f"{where}: duplicate id {query.id!r} (first on line {first_seen[query.id]})")
        first_seen[query.id] = lineno
        queries.append(query)
    return queries


# --- BEIR -------------------------------------------------------------------------------------


@dataclass
class BeirSet:
    """A BEIR dataset split: corpus, queries and positive relevance judgements."""

    documents: dict[str, tuple[str, str]] = field(default_factory=dict)
    """doc id -> (title, text)."""
    queries: dict[str, str] = field(default_factory=dict)
    """query id -> query text, in file order."""
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    """query id -> {doc id: score}; only scores > 0 are kept."""


_PLAIN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def beir_doc_path(doc_id: str) -> str:
    """The corpus-relative Markdown path a BEIR document is written to.

    Plain ids (letters, digits, ``_``, ``-``; at most 100 chars) are used as they are, so paths
    stay readable. Any other id (slashes, dots, spaces, non-ASCII, too long) is slugged and
    suffixed with a hash of the raw id, so distinct ids never share a file, never escape the
    ``docs/`` folder and never become hidden dot-files that ingest might skip.
    """
    if _PLAIN_ID.fullmatch(doc_id):
        return f"docs/{doc_id}.md"
    slug = _UNSAFE.sub("_", doc_id).strip("_")[:60] or "doc"
    digest = hashlib.sha256(doc_id.encode("utf-8")).hexdigest()[:12]
    return f"docs/{slug}-{digest}.md"


def beir_markdown(title: str, text: str, doc_id: str = "") -> str:
    """Render a document as Markdown: an H1 (title, else the id) so chunks carry a heading."""
    heading = " ".join(title.split()) or " ".join(doc_id.split())
    body = text.strip()
    parts = [f"# {heading}"] if heading else []
    if body:
        parts.append(body)
    return "\n\n".join(parts) + "\n"


def _load_corpus(path: Path) -> dict[str, tuple[str, str]]:
    documents: dict[str, tuple[str, str]] = {}
    for lineno, obj in _read_jsonl(path):
        where = f"{path}:{lineno}"
        doc_id = _require_id(obj, where)
        title, text = obj.get("title", ""), obj.get("text", "")
        if not isinstance(title, str) or not isinstance(text, str):
            raise ValueError(f"{where}: fields 'title' and 'text' must be strings")
        documents[doc_id] = (title, text)
    return documents


def _require_id(obj: dict[str, Any], where: str) -> str:
    if "_id" not in obj:
        raise ValueError(f"{where}: missing field '_id'")
    # Some BEIR sets store numeric ids; the string form is what qrels refer to.
    return str(obj["_id"])


def _load_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    for lineno, obj in _read_jsonl(path):
        where = f"{path}:{lineno}"
        queries[_require_id(obj, where)] = _require_str(obj, "text", where)
    return queries


def _load_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, start=1):
            cells = line.rstrip("\r\n").split("\t")
            if not line.strip() or (lineno == 1 and cells[0] == "query-id"):
                continue
            query_id, doc_id, score = _parse_qrel(cells, f"{path}:{lineno}")
            if score > 0:
                qrels.setdefault(query_id, {})[doc_id] = score
    return qrels


def _parse_qrel(cells: list[str], where: str) -> tuple[str, str, int]:
    if len(cells) != 3:
        raise ValueError(f"{where}: expected 3 tab-separated columns, got {len(cells)}")
    try:
        score = int(cells[2])
    except ValueError as exc:
        raise ValueError(f"{where}: score must be an integer, got {cells[2]!r}") from exc
    return cells[0], cells[1], score


def _check_qrels(beir: BeirSet, path: Path) -> None:
    """Judgements must point at loaded queries and documents, else recall is silently capped."""
    for query_id, docs in beir.qrels.items():
        if query_id not in beir.queries:
            raise ValueError(f"{path}: query id {query_id!r} is not in queries.jsonl")
        missing = [doc_id for doc_id in docs if doc_id not in beir.documents]
        if missing:
            raise ValueError(f"{path}: query {query_id!r} judges unknown doc ids {missing[:5]}")


def load_beir(folder: Path, split: str = "test") -> BeirSet:
    """Load ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/{split}.tsv`` from a BEIR folder."""
    qrels_path = folder / "qrels" / f"{split}.tsv"
    beir = BeirSet(
        documents=_load_corpus(folder / "corpus.jsonl"),
        queries=_load_queries(folder / "queries.jsonl"),
        qrels=_load_qrels(qrels_path),
    )
    _check_qrels(beir, qrels_path)
    return beir


def materialise_beir(beir: BeirSet, dest: Path) -> None:
    """Write every document as Markdown under ``dest`` at its :func:`beir_doc_path`."""
    for doc_id, (title, text) in beir.documents.items():
        target = dest / beir_doc_path(doc_id)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(beir_markdown(title, text, doc_id), encoding="utf-8", newline="\n")


def beir_queries(beir: BeirSet) -> list[GoldenQuery]:
    """Queries that have positive judgements, in query-file order, as :class:`GoldenQuery`."""
    return [
        GoldenQuery(
            id=query_id,
            query=text,
            relevant=[beir_doc_path(doc_id) for doc_id in beir.qrels[query_id]],
        )
        for query_id, text in beir.queries.items()
        if beir.qrels.get(query_id)
    ]
