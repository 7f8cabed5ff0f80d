"""A document's operational metadata (service, team, severity, alerts...), from front matter or path.

Teams write front matter by hand, in many spellings: `owner` where another team writes `team`,
`tags: a, b` where another writes a list, dates quoted or not. Everything is normalised here once,
so a filter matches every spelling of a value. A document without a `service` gets one from the
path conventions runbook repositories use (`runbooks/<service>/...`), marked as inferred.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import PurePosixPath
from typing import Any

from devrag.retrieval.schema import DocMeta, keyword

# Front matter keys (lowercased, `-` read as `_`) and the DocMeta field each one fills.
_ALIASES = {"owner": "team", "env": "environment", "alert": "alerts", "tag": "tags"}
_SCALARS = ("service", "team", "severity", "environment")
_LISTS = ("alerts", "tags")
# Read by the chunker and doc_type_for already; not repeated under `meta`.
_USED_ELSEWHERE = {"title", "type", "doc_type"}
# `meta` is copied onto every chunk: prose (a long description) and big lists are not metadata.
MAX_META_VALUE = 200
MAX_META_ITEMS = 50
MAX_META_KEYS = 32
# Folders after which the next folder names a service, anywhere in the path...
_SERVICE_PARENTS = {"runbooks", "alerts"}
# ...and a folder that does so only at the repository root (`docs/` deeper down is too generic).
_ROOT_SERVICE_PARENTS = {"docs"}
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")

Scalar = str | int | float | bool | dt.date


def document_meta(path: str, front_matter: dict[str, Any]) -> tuple[DocMeta, list[str]]:
    """The document's metadata and warnings about values that were ignored.

    Front matter wins; `service` falls back to `service_from_path`. `team` wins over `owner`.
    """
    known: dict[str, Any] = {}
    meta: dict[str, str | list[str]] = {}
    warnings: list[str] = []
    for raw_key, value in front_matter.items():
        key = str(raw_key).strip().lower().replace("-", "_")
        field = _ALIASES.get(key, key)
        if field in _SCALARS or field in _LISTS or field == "last_reviewed":
            if field not in known or key == field:  # `team` over `owner`, whatever their order
                known[field] = value
        elif key not in _USED_ELSEWHERE and len(meta) < MAX_META_KEYS:
            kept = _meta_value(value)
            if kept is not None:
                meta[str(raw_key).strip()] = kept
    fields: dict[str, Any] = {"meta": meta}
    for name in _SCALARS:
        fields[name] = _scalar(name, known.get(name), warnings)
    for name in _LISTS:
        fields[name] = _list(known.get(name), lower=name != "alerts")
    fields["last_reviewed"] = _date(known.get("last_reviewed"), warnings)
    if fields["service"]:
        fields["service_source"] = "front_matter"
    else:
        fields["service"] = service_from_path(path)
        fields["service_source"] = "path" if fields["service"] else None
    return DocMeta(**fields), warnings


def service_from_path(path: str) -> str | None:
    """The service a path's folders name: `runbooks/<service>/`, `alerts/<service>/` (at any depth,
    so `content/runbooks/<service>/` too) or `docs/<service>/` at the root; None otherwise.

    The service must be a folder, not the file: `runbooks/disk-full.md` names no service.
    """
    folders = PurePosixPath(path).parts[:-1]
    for i, folder in enumerate(folders[:-1]):
        parent = folder.lower()
        if parent in _SERVICE_PARENTS or (i == 0 and parent in _ROOT_SERVICE_PARENTS):
            following = folders[i + 1].lower()
            if following in _SERVICE_PARENTS:  # `docs/runbooks/<service>/`: the inner one names it
                continue
            return keyword(following) or None
    return None


def _text(value: Any) -> str | None:
    """A scalar as text (dates in ISO form); None for nulls, mappings and lists."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, str | int | float):
        return " ".join(str(value).split()) or None
    return None


def _scalar(name: str, value: Any, warnings: list[str]) -> str | None:
    if value is None:
        return None
    text = _text(value)
    if text is None:
        warnings.append(f"front matter {name} ignored: expected one value, got {type(value).__name__}")
        return None
    return keyword(text)


def _list(value: Any, lower: bool) -> list[str]:
    """A list field: a YAML list, or one string of comma-separated values; repeats dropped."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else [value]
    texts = [_text(item) for item in items]
    kept = [keyword(t) if lower else t for t in texts if t]
    return list(dict.fromkeys(t for t in kept if t))


def _date(value: Any, warnings: list[str]) -> str | None:
    """An ISO date (YYYY-MM-DD) from a YAML date, a timestamp or a string that starts with one."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    text = _text(value) or ""
    if _ISO_DATE.match(text):
        try:
            return dt.date.fromisoformat(text[:10]).isoformat()
        except ValueError:
            pass
    warnings.append(f"front matter last_reviewed ignored: {text or value!r} is not a date (YYYY-MM-DD)")
    return None


def _meta_value(value: Any) -> str | list[str] | None:
    """A field devrag has no name for: kept when it is a short scalar or a short list of them."""
    if isinstance(value, list):
        items = [t for t in map(_text, value[:MAX_META_ITEMS]) if t and len(t) <= MAX_META_VALUE]
        return items or None
    text = _text(value)
    return text if text and len(text) <= MAX_META_VALUE else None
