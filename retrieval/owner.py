"""The owner of an embedded index: one process holds the qdrant-edge shard, every other one asks it.

Qdrant Edge admits one opener per shard. Rather than fight that with retries, the first devrag
process that needs an index directory starts an owner for it (`python -m devrag.retrieval.owner
DIR`): it opens the shard and answers store calls over a Unix socket, so agent sessions, HTTP
servers and CLI commands share one index and see each other's writes at once. The owner holds no
models and no search state until a command asks it to search (`devrag.retrieval.warm_search`): it
starts as the store and nothing more, in a fraction of a second, and keeps the models such a
search loaded until it leaves. It leaves after an idle timeout with no client connected (or when
its directory is removed), and a client that finds it gone starts a new one
(`devrag.retrieval.owned_store`).

Only processes of the same user can connect: the socket is created mode 0600 and the peer's uid
is checked, which is what makes unpickling requests safe.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import logging
import os
import pickle
import signal
import socket
import socketserver
import struct
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from hashlib import sha256
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

log = logging.getLogger(__name__)

IDLE_ENV = "DEVRAG_OWNER_IDLE_SECONDS"
# A search makes several engine calls a few milliseconds apart: reading vectors ahead waits until
# the engine has had no call for this long, so it does not run between a search's calls.
_WARM_AFTER_IDLE_S = 0.25
_WARM_PAUSE_S = 0.005
DEFAULT_IDLE_S = 300.0
# The store calls a client may make; anything else is refused.
STORE_CALLS = frozenset(
    {
        "ensure_collection",
        "payload_indexes",
        "upsert",
        "delete",
        "retrieve",
        "scroll_page",
        "search",
        "lexical_search",
        "count",
        "facet",
        "optimize",
        "vacuum",
        "warm_search",
        "get_meta",
        "put_meta",
        "delete_meta",
        "meta_keys",
        "ping",
        "version",
        "warm_seconds",
    }
)
ACQUIRE_WRITER, RELEASE_WRITER = "acquire_writer", "release_writer"
_HEADER = struct.Struct("!Q")
_SUN_PATH_MAX = 100  # sockaddr_un holds 108 bytes on Linux, 104 on macOS


def code_version() -> str:
    """The installed devrag's version: a client and its owner must run the same store code."""
    return importlib.metadata.version("devrag")


@dataclass(frozen=True)
class OwnerPaths:
    """Where an index directory's owner keeps its socket, lock and log."""

    index_dir: Path

    @property
    def socket(self) -> str:
        """`DIR/owner.sock`, or a per-user runtime path when DIR is too deep for a socket address."""
        direct = str(self.index_dir / "owner.sock")
        if len(direct) < _SUN_PATH_MAX:
            return direct
        digest = sha256(str(self.index_dir.resolve()).encode()).hexdigest()[:20]
        base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
        return os.path.join(base, f"devrag-{os.getuid()}-{digest}.sock")

    @property
    def lock(self) -> Path:
        return self.index_dir / "owner.lock"

    @property
    def log(self) -> Path:
        return self.index_dir / "owner.log"


def send_message(sock: socket.socket, message: Any) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    sock.sendall(_HEADER.pack(len(data)) + data)


def recv_message(sock: socket.socket) -> Any:
    """One framed message; EOFError when the peer has gone."""
    (size,) = _HEADER.unpack(_recv_exact(sock, _HEADER.size))
    return pickle.loads(_recv_exact(sock, size))


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buf = bytearray(size)
    view = memoryview(buf)
    got = 0
    while got < size:
        n = sock.recv_into(view[got:])
        if n == 0:
            raise EOFError("the peer closed the connection")
        got += n
    return bytes(buf)


class _Owner:
    """The shard, one store call at a time, and the one-writer lease that ingests hold."""

    def __init__(self, index_dir: Path, idle_s: float) -> None:
        self.index_dir = index_dir
        self.idle_s = idle_s
        self._store: Any = None
        self._warm: Any = None  # WarmSearches, made by the first search a command hands over
        self._warm_lock = threading.Lock()
        self._engine = threading.Lock()
        self.writer = threading.Lock()
        self._clients = 0
        self._last_seen = time.monotonic()
        self._count_lock = threading.Lock()
        self._closing = threading.Event()
        self._last_call = 0.0  # when a client's call last reached or left the engine (monotonic)
        self.warm_s: float | None = None  # set once `warm` has read every vector

    def call(self, method: str, args: tuple[Any, ...]) -> Any:
        if method not in STORE_CALLS:
            raise ValueError(f"unknown store call {method!r}")
        if method == "ping":
            return os.getpid()
        if method == "version":
            return code_version()
        if method == "warm_seconds":
            return self.warm_s
        if method == "warm_search":  # its store calls come back through the socket, one at a time
            return self._warm_searches().search(*args)
        self._last_call = time.monotonic()  # before the wait for the engine: the warm-up gives way
        with self._engine:
            try:
                return getattr(self._opened(), method)(*args)
            finally:
                self._last_call = time.monotonic()

    def _opened(self) -> Any:
        """The store, opened on first use (hold `_engine`)."""
        from devrag.retrieval.edge_store import EdgeStore  # the engine loads only in the owner

        if self._store is None:
            self._store = EdgeStore(self.index_dir)
        return self._store

    def warm(self) -> None:
        """Open the shard and read its vectors, a slice per engine call (`EdgeStore.warm`).

        Why: the engine reads vectors as searches first touch them, and the first searches after a
        load were nine times slower than later ones (1M chunks). A slice waits until clients have
        left the engine alone for `_WARM_AFTER_IDLE_S`, so a search waits behind one slice at most
        (about 40 ms); until the last slice, a search may still read some vectors cold.
        """
        started = time.monotonic()
        try:
            with self._engine:
                parts = self._opened().warm_slices()
            for part in range(parts):
                while (wait := self._last_call + _WARM_AFTER_IDLE_S - time.monotonic()) > 0:
                    time.sleep(wait)
                with self._engine:
                    if self._closing.is_set():
                        return
                    self._opened().warm(part, parts)
                # The engine holds the interpreter for a whole call: a pause lets a thread that
                # waited for it read its request and claim the engine before the next slice.
                time.sleep(_WARM_PAUSE_S)
        except Exception:  # a warm engine is a speed-up, never a reason to stop serving
            log.exception("reading the vectors ahead failed")
            return
        self.warm_s = round(time.monotonic() - started, 3)
        log.info("read the vectors of %d slices in %.1f s", parts, self.warm_s)

    def _warm_searches(self) -> Any:
        from devrag.retrieval.warm_search import WarmSearches  # models and search load on first use

        with self._warm_lock:
            if self._warm is None:
                self._warm = WarmSearches(self.index_dir)
            return self._warm

    def connected(self, delta: int) -> None:
        with self._count_lock:
            self._clients += delta
            self._last_seen = time.monotonic()

    def idle(self) -> bool:
        with self._count_lock:
            return self._clients == 0 and time.monotonic() - self._last_seen > self.idle_s

    def close(self) -> None:
        self._closing.set()
        if self._warm is not None:
            self._warm.close()
        with self._engine:
            if self._store is not None:
                self._store.close()
                self._store = None


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def setup(self) -> None:
        self.server.owner.connected(+1)

    def finish(self) -> None:
        self.server.owner.connected(-1)

    def handle(self) -> None:
        if not _same_user(self.request):
            log.warning("refused a connection from another user")
            return
        holds_writer = False
        try:
            while True:
                try:
                    method, args = recv_message(self.request)
                except (EOFError, OSError):
                    return
                holds_writer = self._lease(method, holds_writer)
                send_message(self.request, self._reply(method, args))
        finally:
            if holds_writer:
                self.server.owner.writer.release()

    def _lease(self, method: str, holds: bool) -> bool:
        """Take or give back the writer lease; the connection's end gives it back too."""
        if method == ACQUIRE_WRITER and not holds:
            self.server.owner.writer.acquire()
            return True
        if method == RELEASE_WRITER and holds:
            self.server.owner.writer.release()
            return False
        return holds

    def _reply(self, method: str, args: tuple[Any, ...]) -> tuple[str, Any]:
        if method in (ACQUIRE_WRITER, RELEASE_WRITER):
            return "ok", None
        try:
            return "ok", self.server.owner.call(method, args)
        except Exception as exc:  # a process boundary: the client raises it as its own
            return "error", _portable(exc)


def _portable(exc: Exception) -> Exception:
    """The exception itself when it survives pickling, else a RuntimeError with its text."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _same_user(sock: socket.socket) -> bool:
    peercred = getattr(socket, "SO_PEERCRED", None)
    if peercred is None:  # not Linux: the socket's 0600 mode is the guard
        return True
    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, peercred, struct.calcsize("3i")))
    return bool(uid == os.getuid())


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, address: str, owner: _Owner) -> None:
        self.owner = owner
        old = os.umask(0o177)  # the socket is born 0600
        try:
            super().__init__(address, _Handler)
        finally:
            os.umask(old)


def serve(index_dir: Path, idle_s: float) -> int:
    """Own `index_dir` until idle; returns at once when another owner already holds it."""
    paths = OwnerPaths(index_dir)
    index_dir.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(paths.lock))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.info("another owner serves %s", index_dir)
        return 0
    try:
        if os.path.exists(paths.socket):  # left by an owner that was killed; we hold the lock now
            os.unlink(paths.socket)
        owner = _Owner(index_dir, idle_s)
        server = _Server(paths.socket, owner)
        _stop_when_done(server, owner, paths)
        threading.Thread(target=owner.warm, name="devrag-owner-warm", daemon=True).start()
        log.info("owner %d serving %s at %s", os.getpid(), index_dir, paths.socket)
        server.serve_forever(poll_interval=0.5)
        server.server_close()
        owner.close()
        if os.path.exists(paths.socket):
            os.unlink(paths.socket)
        log.info("owner %d stopped", os.getpid())
    finally:
        lock.release()
    return 0


def _stop_when_done(server: _Server, owner: _Owner, paths: OwnerPaths) -> None:
    """Stop on SIGTERM/SIGINT, after the idle timeout, or when the index directory is gone."""

    def stop(*_: Any) -> None:
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if owner.idle() or not paths.index_dir.exists() or not os.path.exists(paths.socket):
                server.shutdown()
                return

    threading.Thread(target=watch, name="devrag-owner-idle", daemon=True).start()


def _detach() -> None:
    """Fork once more, so the owner is nobody's child: no zombie and no wait for whoever started it."""
    if os.fork() > 0:
        os._exit(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devrag.retrieval.owner", description=__doc__)
    parser.add_argument("index_dir", type=Path)
    parser.add_argument("--idle-seconds", type=float, default=float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S)))
    parser.add_argument("--foreground", action="store_true", help="Do not detach (for debugging).")
    args = parser.parse_args(argv)
    if not args.foreground:
        _detach()
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s owner[%(process)d] %(levelname)s %(message)s",
    )
    return serve(args.index_dir.resolve(), args.idle_seconds)


if __name__ == "__main__":
    sys.exit(main())
