"""Which metadata values an index holds, per repository: the values search's filters can take."""

from __future__ import annotations

from collections import Counter

from devrag.retrieval.index import Index
from devrag.retrieval.schema import FILTER_FIELDS
from devrag.retrieval.store import PointFilter

Facets = dict[str, dict[str, int]]  # field -> value -> documents


def metadata_values(index: Index) -> dict[str, Facets]:
    """repo -> field -> value -> how many documents carry it, most common first.

    Counted per document, not per chunk: a long runbook is one `payments` page, however many
    sections it has: the engine lists each document's first chunk, a few small fields of it, so
    this needs no models and reads one payload per document.
    """
    counts: dict[str, dict[str, Counter[str]]] = {}
    for point in index.store.scroll(PointFilter(first=True), fields=["repo", *FILTER_FIELDS]):
        payload, repo = point.payload, point.payload["repo"]
        per_field = counts.setdefault(repo, {name: Counter() for name in FILTER_FIELDS})
        for name in FILTER_FIELDS:
            value = payload.get(name)
            values = value if isinstance(value, list) else [] if value is None else [str(value)]
            per_field[name].update(values)
    return {
        repo: {name: dict(sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))) for name, c in fields.items()}
        for repo, fields in counts.items()
    }
