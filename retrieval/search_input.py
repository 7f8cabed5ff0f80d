"""What a search or document read may ask for, checked in one place for the CLI and every MCP tool.

Each check answers in one sentence that names the argument and says what to send instead: an
agent reads it as a tool error and corrects its call, an engineer reads it as the CLI's one-line
error. The adapters call the same functions on the same inputs, so they accept and refuse alike.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import get_args

from devrag.retrieval.errors import DevragError
from devrag.retrieval.schema import DocType

MAX_K = 20
MAX_QUERY_TOKENS = 8000
MAX_QUERY_CHARS = 64_000
MAX_ALERT_CHARS = 200_000  # a notification of many alerts, each with its labels and annotations
MAX_QUERY_ID = 64
MAX_FEEDBACK_DOCUMENT, MAX_FEEDBACK_NOTE = 4096, 2000
MIN_BUDGET, MAX_BUDGET = 200, 32000
# A search answer ends with its query_id (about 20 tokens). The smallest answer the budget tests
# reach (one citation with its get_document calls, the freshness and left-out lines) then measured
# 219 tokens where it had measured 193: at 200 it no longer fits, so a search needs a little more.
MIN_SEARCH_BUDGET = 250
DOC_TYPES: tuple[str, ...] = get_args(DocType)


class InputError(DevragError):
    """An argument the caller can correct; the message names it and says how."""


# Document metadata a search may filter on (see `filters.Filters`), by argument name.
METADATA_FILTERS: tuple[str, ...] = ("service", "team", "severity", "environment", "tag", "alert")


@dataclass(frozen=True)
class SearchInput:
    query: str
    k: int
    repo: str | None
    path: str | None
    doc_type: str | None
    metadata: dict[str, str] = field(default_factory=dict)  # METADATA_FILTERS given, by name


def check_search(raw: Mapping[str, object]) -> SearchInput:
    """The arguments of a search, or InputError naming the first one that is wrong.

    Raises:
        InputError: a missing or empty query, a k out of range, an unknown document type, an
            invalid path glob, an empty metadata filter or a wrong type.
    """
    query = _text(raw, "query", required=True)
    assert query is not None
    if not is_visible(query):
        raise InputError("The query is empty. Search for an alert name, error message or service name.")
    doc_type = _text(raw, "doc_type")
    if doc_type is not None and doc_type not in DOC_TYPES:
        raise InputError(f"doc_type={doc_type!r} is not a document type; use one of {', '.join(DOC_TYPES)}.")
    path = _text(raw, "path")
    if path is not None:
        check_glob(path)
    if "max_tokens" in raw:
        check_int(raw, "max_tokens", MIN_SEARCH_BUDGET, MAX_BUDGET, "the token budget for the answer")
    return SearchInput(
        query=query.strip(),
        k=check_int(raw, "k", 1, MAX_K, "how many documents to return", default=5),
        repo=_text(raw, "repo"),
        path=path,
        doc_type=doc_type,
        metadata={name: v for name in METADATA_FILTERS if (v := _filter_value(raw, name)) is not None},
    )


def _filter_value(raw: Mapping[str, object], name: str) -> str | None:
    value = _text(raw, name)
    if value is not None and not value.strip():
        raise InputError(
            f"{name} is empty; leave it out, or pass one of the values list_sources lists for {name}."
        )
    return value


def check_document(raw: Mapping[str, object]) -> None:
    """The arguments of a document read: repo and path given, budget and offset in range.

    Raises:
        InputError: the first argument that is missing, of the wrong type or out of range.
    """
    for name in ("repo", "path"):
        _text(raw, name, required=True)
    _text(raw, "section")
    if "max_tokens" in raw:
        check_int(raw, "max_tokens", MIN_BUDGET, MAX_BUDGET, "the token budget for this page")
    if "offset" in raw:
        check_int(raw, "offset", 0, 10**9, "lines to skip (the previous page's next_offset)")


def check_alert(raw: Mapping[str, object]) -> None:
    """The arguments of an alert search: the alert pasted as text, with a search's k, repo and budget.

    Raises:
        InputError: the alert is missing, not text or too long; or k,
            repo or max_tokens is wrong.
    """
    alert = _text(raw, "alert", required=True)
    assert alert is not None  # one that holds no alert is refused by `alert_input.parse_alerts`
    if len(alert) > MAX_ALERT_CHARS:
        raise InputError(
            f"alert is {len(alert):,} characters; the limit is {MAX_ALERT_CHARS:,}. Paste the alerts "
            "that fired, not a whole log or dump."
        )
    check_int(raw, "k", 1, MAX_K, "how many documents to return", default=5)
    _text(raw, "repo")
    if "max_tokens" in raw:
        check_int(raw, "max_tokens", MIN_SEARCH_BUDGET, MAX_BUDGET, "the token budget for the answer")


def check_feedback(raw: Mapping[str, object]) -> None:
    """The arguments of a feedback call: the answer's query_id, helpful as true or false, and an
    optional document and note of bounded length.

    Raises:
        InputError: the first argument that is missing, of the wrong type or too long.
    """
    _bounded(raw, "query_id", MAX_QUERY_ID, "the query_id of the search answer", required=True)
    if not isinstance(raw.get("helpful"), bool):
        shown = "missing" if raw.get("helpful") is None else f"{raw['helpful']!r}, not true or false"
        raise InputError(f"helpful is {shown}; pass true when the answer helped, false when it did not.")
    _bounded(raw, "document", MAX_FEEDBACK_DOCUMENT, "one result of that answer, as repo:path")
    _bounded(raw, "note", MAX_FEEDBACK_NOTE, "what was missing or wrong, briefly")


def is_visible(text: str) -> bool:
    """Whether the text holds a letter, digit, punctuation mark or symbol: spaces, control and
    zero-width characters alone give the models nothing to read, yet would find something."""
    return any(unicodedata.category(c)[0] in "LNPS" for c in text)


def check_query_length(query: str, count_tokens: Callable[[str], int]) -> int:
    """The query's length in word pieces; over MAX_QUERY_TOKENS (or MAX_QUERY_CHARS) it is refused.

    Raises:
        InputError: the query is longer than any alert or log excerpt an agent should paste.
    """
    if len(query) > MAX_QUERY_CHARS:  # one huge "word" counts as a single unknown word piece
        raise InputError(
            f"The query is {len(query):,} characters; the limit is {MAX_QUERY_CHARS:,}. Paste the alert "
            "and the lines of the log that matter, not the whole log."
        )
    tokens = count_tokens(query)
    if tokens > MAX_QUERY_TOKENS:
        raise InputError(
            f"The query is {tokens} tokens; the limit is {MAX_QUERY_TOKENS}. Paste the alert and the "
            "lines of the log that matter, not the whole log."
        )
    return tokens


def check_repo(repo: str | None, indexed: Sequence[str], location: str) -> None:
    """The index at `location` holds a repository, and `repo` (when given) is one of them.

    Raises:
        InputError: the index is empty, or `repo` is not indexed.
    """
    if not indexed:
        raise InputError(
            f"The index at {location} holds no repositories yet. Run `devrag ingest PATH/TO/REPO` with "
            "the same index settings; a running server sees it as soon as it finishes."
        )
    if repo is not None and repo not in indexed:
        raise InputError(
            f"Unknown repository {repo!r}. Indexed repositories: {', '.join(sorted(indexed))}. "
            "List them with list_sources (or `devrag status`), or leave repo out to search all."
        )


def check_glob(pattern: str) -> None:
    """fnmatch takes almost anything; refuse what would silently match nothing a caller meant.

    Raises:
        InputError: the glob is empty, absolute, has unpaired brackets or brace alternatives.
    """
    problem = None
    if not pattern.strip():
        problem = "it is empty"
    elif pattern.startswith("/"):
        problem = "paths are relative to the repository root"
    elif pattern.count("[") != pattern.count("]"):
        problem = "its [ and ] do not pair up"
    elif "{" in pattern or "}" in pattern:
        problem = "brace alternatives like {a,b} are not supported; search once per pattern"
    if problem:
        raise InputError(
            f"Invalid path glob {pattern!r}: {problem}. Use a glob relative to the repository root, "
            "where * also crosses folders: 'runbooks/*', '*.md', 'deploy/*/values.yaml'."
        )


def check_int(raw: Mapping[str, object], name: str, low: int, high: int, what: str, default: int = 0) -> int:
    """An integer argument within [low, high] (`default` when absent).

    Raises:
        InputError: it is not a whole number, or it is out of range.
    """
    value = raw.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"{name}={value!r} is not a whole number; {name} is {what}, from {low} to {high}.")
    if not low <= value <= high:
        raise InputError(f"{name}={value} is out of range; {name} is {what}, from {low} to {high}.")
    return value


def _bounded(raw: Mapping[str, object], name: str, limit: int, what: str, required: bool = False) -> None:
    value = _text(raw, name, required)
    if value is not None and len(value) > limit:
        raise InputError(f"{name} is {len(value):,} characters; {name} is {what}, at most {limit:,}.")


def _text(raw: Mapping[str, object], name: str, required: bool = False) -> str | None:
    value = raw.get(name)
    if value is None:
        if required:
            raise InputError(f"{name} is missing; pass it as a string.")
        return None
    if not isinstance(value, str):
        raise InputError(f"{name}={value!r} is not a string; pass it as text.")
    return value
