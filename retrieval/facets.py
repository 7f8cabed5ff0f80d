"""Which metadata values an index holds, per repository: the values search's filters can take."""

from __future__ import annotations

from collections import Counter

from devrag.retrieval.index import Index
from devrag.retrieval.schema import FILTER_FIELDS

Facets = dict[str, dict[str, int]]  # field -> value -> documents


def metadata_values(index: Index) -> dict[str, Facets]:
    """repo -> field -> value -> how many documents carry it, most common first.

    Counted per document, not per chunk: a long runbook is one `payments` page, however many
    sections it has. Read from the payloads (a scroll of a few small fields), so it needs no models.
    """
    documents: dict[tuple[str, str], dict[str, object]] = {}
    for point in index.store.scroll(fields=["repo", "path", *FILTER_FIELDS]):
        documents.setdefault((point.payload["repo"], point.payload["path"]), point.payload)
    counts: dict[str, dict[str, Counter[str]]] = {}
    for (repo, _path), payload in documents.items():
        per_field = counts.setdefault(repo, {name: Counter() for name in FILTER_FIELDS})
        for name in FILTER_FIELDS:
            value = payload.get(name)
            values = value if isinstance(value, list) else [] if value is None else [str(value)]
            per_field[name].update(values)
    return {
        repo: {name: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for name, c in fields.items()}
        for repo, fields in counts.items()
    }
