"""The query log as the server and the CLI use it: opened from Settings, written without failing a search."""

from __future__ import annotations

import logging

from devrag.retrieval.query_log import LOG_NAME, QueryLog, QueryLogError
from devrag.retrieval.query_records import SearchRecord
from devrag.server.settings import Settings

log = logging.getLogger(__name__)

LOG_OFF = (
    "Feedback is not recorded on this server: it needs the query log, which is off. Nothing was "
    "recorded. The operator turns it on with DEVRAG_QUERY_LOG=1 (queries are then kept in a local "
    "file beside the index); until then, there is no need to send feedback."
)


def open_query_log(settings: Settings) -> QueryLog | None:
    """The configured log in the index folder, or None when it is off (the default)."""
    if not settings.query_log:
        return None
    path = settings.index_dir / LOG_NAME
    return QueryLog(path, settings.query_log_max_bytes, settings.query_log_backups)


def log_search(query_log: QueryLog | None, record: SearchRecord) -> None:
    """Append a search record; a log that cannot be written costs its record, never the answer."""
    if query_log is None:
        return
    try:
        query_log.append(record)
    except OSError as exc:
        log.warning("query log %s not written: %s", query_log.path, exc)


def require(query_log: QueryLog | None) -> QueryLog:
    """The log, for feedback.

    Raises:
        QueryLogError: the log is off, with what to do about it.
    """
    if query_log is None:
        raise QueryLogError(LOG_OFF)
    return query_log
