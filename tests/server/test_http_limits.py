"""HTTP limits: half-open connections time out, a connection cap, and a body limit.

A real `devrag serve --transport http` on loopback, with limits small enough to reach in a test,
is driven over raw sockets: a client that connects and says nothing, one that stops halfway
through its headers, one that trickles them a byte at a time, one that promises a body it never
sends, and one that sends far more than the limit.
"""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.mcp_support import free_port, start_http, stop

pytestmark = pytest.mark.model

REQUEST_TIMEOUT = 2
MAX_CONNECTIONS = 8
MAX_BODY = 4096
INITIALIZE = (
    b'{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18",'
    b' "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}}'
)


class Server:
    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token

    def head(self, length: int | None = None, chunked: bool = False) -> bytes:
        """The headers of a POST to /mcp, up to and including the blank line."""
        lines = [
            "POST /mcp HTTP/1.1",
            f"Host: 127.0.0.1:{self.port}",
            f"Authorization: Bearer {self.token}",
            "Content-Type: application/json",
            "Accept: application/json, text/event-stream",
        ]
        lines += [f"Content-Length: {length}"] if length is not None else []
        lines += ["Transfer-Encoding: chunked"] if chunked else []
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        return sock

    def initialize(self) -> httpx.Response:
        """What a well-behaved client sends first."""
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
        }
        return httpx.post(
            f"http://127.0.0.1:{self.port}/mcp", content=INITIALIZE, headers=headers, timeout=30
        )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module: no index is needed to connect, time out or initialize."""
    tmp = Path(tmp_path_factory.mktemp("limits"))
    port, token = free_port(), secrets.token_hex(32)
    limits = {
        "DEVRAG_HTTP_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT),
        "DEVRAG_HTTP_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "DEVRAG_HTTP_MAX_BODY_BYTES": str(MAX_BODY),
    }
    process = start_http(tmp / "index", port, token, tmp / "server.log", **limits)
    try:
        yield Server(port, token)
    finally:
        stop(process)


def closed_after(sock: socket.socket, started: float) -> float:
    """Seconds from `started` until the server closed `sock` (read returns end of stream)."""
    while True:
        try:
            if sock.recv(65536) == b"":
                return time.monotonic() - started
        except ConnectionResetError:
            return time.monotonic() - started


def response(sock: socket.socket) -> bytes:
    """One whole response to `initialize` (chunked, as an event stream)."""
    data = b""
    while not data.endswith(b"\r\n0\r\n\r\n"):
        more = sock.recv(65536)
        assert more, f"closed before the response ended: {data!r}"
        data += more
    return data


def test_half_open_connections_are_closed_after_the_request_timeout(server):
    started = time.monotonic()
    silent = [server.connect() for _ in range(2)]
    partial = [server.connect() for _ in range(2)]
    for sock in partial:
        sock.sendall(server.head()[:40])
    no_body = server.connect()
    no_body.sendall(server.head(length=len(INITIALIZE)) + INITIALIZE[:10])
    for sock in [*silent, *partial, no_body]:
        assert REQUEST_TIMEOUT - 0.5 <= closed_after(sock, started) < REQUEST_TIMEOUT + 8
        sock.close()


def test_trickled_headers_do_not_reset_the_timeout(server):
    sock = server.connect()
    started = time.monotonic()
    head = server.head()
    try:
        for byte in head[:-4]:  # never the blank line that ends the headers
            sock.sendall(bytes([byte]))
            time.sleep(0.1)
    except (BrokenPipeError, ConnectionResetError):
        pass
    assert closed_after(sock, started) < REQUEST_TIMEOUT + 8
    sock.close()


def test_an_idle_keep_alive_connection_outlives_the_request_timeout(server):
    request = server.head(length=len(INITIALIZE)) + INITIALIZE
    with server.connect() as sock:
        sock.sendall(request)
        assert response(sock).startswith(b"HTTP/1.1 200")
        time.sleep(REQUEST_TIMEOUT + 1)  # idle between requests: the keep-alive timeout's business
        sock.sendall(request)
        assert response(sock).startswith(b"HTTP/1.1 200")


def test_past_the_connection_cap_new_connections_are_refused_until_slow_ones_are_dropped(server):
    started = time.monotonic()
    slow = [server.connect() for _ in range(MAX_CONNECTIONS)]
    with server.connect() as extra:
        answer = extra.recv(65536)
    assert answer.startswith(b"HTTP/1.1 503") and b"Too many open connections" in answer
    assert time.monotonic() - started < REQUEST_TIMEOUT, "refused at once, not after a timeout"
    for sock in slow:
        closed_after(sock, started)
        sock.close()
    assert server.initialize().status_code == 200


def test_an_oversized_body_gets_413_without_being_read(server):
    with server.connect() as sock:
        started = time.monotonic()
        sock.sendall(server.head(length=50_000_000))  # and not one byte of the body
        answer = b""  # uvicorn writes the head and the body apart: one recv may hold only the head
        while b"DEVRAG_HTTP_MAX_BODY_BYTES" not in answer and (part := sock.recv(65536)):
            answer += part
        assert answer.startswith(b"HTTP/1.1 413") and b"DEVRAG_HTTP_MAX_BODY_BYTES" in answer
        assert closed_after(sock, started) < REQUEST_TIMEOUT, "closed at once, not left to time out"
    with server.connect() as sock:
        chunk = b"x" * (MAX_BODY + 1)
        sock.sendall(server.head(chunked=True) + f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 413")
    assert server.initialize().status_code == 200
