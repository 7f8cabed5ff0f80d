"""The embedded index as every process sees it: a VectorStore client of the index's owner process.

The owner (`devrag.retrieval.owner`) is started on demand by the first client, and again by any
client that finds it gone (idle timeout, a crash, `kill`): every store call is idempotent, so a
call cut off by a dying owner is sent once more to the next one.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devrag.retrieval.errors import OwnerUnavailableError
from devrag.retrieval.owner import (
    ACQUIRE_WRITER,
    RELEASE_WRITER,
    OwnerPaths,
    code_version,
    recv_message,
    send_message,
)
from devrag.retrieval.store import PointFilter, ScoredId, StoredPoint, scroll_pages

if TYPE_CHECKING:
    from devrag.retrieval.search import SearchResponse
    from devrag.retrieval.warm_search import SearchCall

log = logging.getLogger(__name__)

_START_TIMEOUT_S = 30.0
_RESTART_EVERY_S = 2.0
_ATTEMPTS = 4


class OwnedStore:
    """A VectorStore whose calls go to the owner of `index_dir` over its Unix socket."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = Path(index_dir).resolve()
        self.location = str(self.index_dir)
        self._paths = OwnerPaths(self.index_dir)
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()  # one call at a time on the shared connection
        self._call("ping")  # reach (or start) the owner now, so a failure shows at open

    # VectorStore ----------------------------------------------------------------------------------

    def ensure_collection(self, dim: int) -> None:
        self._call("ensure_collection", dim)

    def payload_indexes(self) -> set[str] | None:
        found = self._call("payload_indexes")
        return None if found is None else set(found)

    def upsert(self, points: Sequence[StoredPoint]) -> None:
        if points:
            self._call("upsert", list(points))

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._call("delete", list(ids))

    def retrieve(
        self, ids: Sequence[str], with_vectors: bool = False, fields: Sequence[str] | None = None
    ) -> list[StoredPoint]:
        wanted = list(fields) if fields is not None else None
        return list(self._call("retrieve", list(ids), with_vectors, wanted)) if ids else []

    def scroll(
        self,
        flt: PointFilter | None = None,
        fields: Sequence[str] | None = None,
        with_vectors: bool = False,
        limit: int | None = None,
    ) -> Iterator[StoredPoint]:
        """Page by page, one call each, so a long scroll never holds the owner."""
        return scroll_pages(self._scroll_page, flt, fields, with_vectors, limit)

    def _scroll_page(self, *request: Any) -> tuple[list[StoredPoint], Any]:
        """One page: `EdgeStore.scroll_page` with these arguments, in one call to the owner."""
        page, next_offset = self._call("scroll_page", *request)
        return list(page), next_offset

    def search(self, vector: Sequence[float], limit: int, flt: PointFilter | None = None) -> list[ScoredId]:
        return list(self._call("search", list(vector), limit, flt))

    def lexical_search(self, text: str, limit: int, flt: PointFilter | None = None) -> list[ScoredId]:
        return list(self._call("lexical_search", text, limit, flt)) if text else []

    def count(self, flt: PointFilter | None = None) -> int:
        return int(self._call("count", flt))

    def facet(self, field: str, flt: PointFilter | None = None, limit: int = 1000) -> dict[str, int]:
        return dict(self._call("facet", field, flt, limit))

    def optimize(self) -> bool:
        return bool(self._call("optimize"))

    def vacuum(self) -> bool | None:
        return bool(self._call("vacuum"))

    def owner_pid(self) -> int:
        """The process id of the owner that answers this store's calls."""
        return int(self._call("ping"))

    def warm_seconds(self) -> float | None:
        """How long the owner took to read the index's vectors ahead of searches; None until done."""
        seconds = self._call("warm_seconds")
        return None if seconds is None else float(seconds)

    def warm_search(self, call: SearchCall) -> SearchResponse:
        """The search answered by the owner, with the models it keeps loaded (`warm_search`)."""
        response: SearchResponse = self._call("warm_search", call)
        return response

    def get_meta(self, key: str) -> dict[str, Any] | None:
        value = self._call("get_meta", key)
        return dict(value) if value is not None else None

    def put_meta(self, key: str, value: dict[str, Any]) -> None:
        self._call("put_meta", key, value)

    def delete_meta(self, key: str) -> None:
        self._call("delete_meta", key)

    def meta_keys(self) -> list[str]:
        return list(self._call("meta_keys"))

    @contextmanager
    def writer(self) -> Iterator[None]:
        """Hold the index's one-writer lease, on a connection of its own.

        Waiting for the lease must not block this process's searches, and the owner gives the
        lease back when the connection ends, so a killed ingest never leaves the index locked.
        """
        sock = self._connect()
        try:
            _request(sock, ACQUIRE_WRITER)
            yield
            _request(sock, RELEASE_WRITER)
        finally:
            sock.close()

    def close(self) -> None:
        with self._lock:
            if self._sock is not None:
                self._sock.close()
                self._sock = None

    # Connection -----------------------------------------------------------------------------------

    def _call(self, method: str, *args: Any) -> Any:
        with self._lock:
            for attempt in range(_ATTEMPTS):
                try:
                    if self._sock is None:
                        self._sock = self._connect()
                    return _request(self._sock, method, *args)
                except (OSError, EOFError) as exc:
                    if self._sock is not None:
                        self._sock.close()
                        self._sock = None
                    if attempt == _ATTEMPTS - 1:
                        raise OwnerUnavailableError(
                            f"Lost the owner process of the index at {self.index_dir}: {exc}. "
                            f"See {self._paths.log}."
                        ) from exc
                    log.info("the index owner went away (%s); reconnecting", exc)
                    time.sleep(0.05 * 2**attempt)  # a dying owner may still hold its socket
        raise AssertionError("unreachable")

    def _connect(self) -> socket.socket:
        """A connection to the owner, starting one when none answers.

        A new owner started while a dying one still holds the lock exits at once, so the start
        is repeated until one answers.
        """
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            sock = _try_connect(self._paths.socket)
            if sock is not None:
                return self._same_code(sock)
            _start_owner(self._paths)
            retry_at = time.monotonic() + _RESTART_EVERY_S
            while time.monotonic() < min(retry_at, deadline):
                sock = _try_connect(self._paths.socket)
                if sock is not None:
                    return self._same_code(sock)
                time.sleep(0.02)
        raise OwnerUnavailableError(
            f"The owner process of the index at {self.index_dir} did not start within "
            f"{_START_TIMEOUT_S:.0f} s. {_log_tail(self._paths)}"
        )

    def _same_code(self, sock: socket.socket) -> socket.socket:
        """The connection, once its owner is known to run this devrag version.

        An owner started before an upgrade keeps serving while any client (a long-lived `devrag
        serve`) stays connected; its store calls may differ from this process's, so say so at
        once rather than fail on the first call it does not know.
        """
        try:
            theirs = _request(sock, "version")
        except ValueError:  # owners before the version call refuse it as unknown
            theirs = "an older version"
        if theirs == code_version():
            return sock
        pid = _request(sock, "ping")
        sock.close()
        raise OwnerUnavailableError(
            f"The owner process of the index at {self.index_dir} (pid {pid}) runs devrag {theirs}; this "
            f"is devrag {code_version()}. Restart the devrag servers using this index, or stop the "
            f"owner (`kill {pid}`); the next command starts a current one."
        )


def _request(sock: socket.socket, method: str, *args: Any) -> Any:
    send_message(sock, (method, args))
    status, value = recv_message(sock)
    if status == "error":
        raise value
    return value


def _try_connect(path: str) -> socket.socket | None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    return sock


def _start_owner(paths: OwnerPaths) -> None:
    """Start the owner; it detaches at once, so this returns within a fraction of a second."""
    paths.index_dir.mkdir(parents=True, exist_ok=True)
    with paths.log.open("ab") as log_file:
        subprocess.run(
            [sys.executable, "-m", "devrag.retrieval.owner", str(paths.index_dir)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
            start_new_session=True,
            check=False,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def _log_tail(paths: OwnerPaths) -> str:
    try:
        lines = paths.log.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return "Its log ends: " + " | ".join(lines[-5:]) if lines else ""
