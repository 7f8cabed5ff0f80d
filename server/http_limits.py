"""Limits that keep slow, half-open or oversized HTTP requests from exhausting the server.

uvicorn (0.54, h11) arms its only timer, keep-alive, after a response: a connection that never
finishes its request headers is held forever, before any token check, and one socket per such
client eventually stops the server accepting anyone (1,100 of them did, measured). `limit_concurrency`
does not help: it is checked once headers have arrived, and answers 503 to the request, not the
connection. So devrag runs uvicorn's own h11 protocol with two additions, plus a body limit in ASGI:

- a request deadline: from connecting (or from the first byte after an idle keep-alive) a client
  has `request_timeout` seconds to send the whole request, headers and body, or is disconnected;
- a connection cap: past `max_connections` open sockets, a new one gets a 503 and is closed at once,
  so descriptors stay bounded while the deadline clears out the slow ones;
- a body limit: a declared Content-Length over `max_body_bytes` gets 413 before any of it is read.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

# Descriptors the server needs beside client sockets: models, the store, git subprocess pipes, logs.
_RESERVED_DESCRIPTORS = 256
_FULL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"retry-after: 5\r\nconnection: close\r\ncontent-length: 41\r\n\r\n"
    b"Too many open connections; retry shortly."
)


@dataclass(frozen=True)
class HttpLimits:
    """The HTTP transport's limits, in seconds and bytes; `ServeSettings` holds the defaults."""

    request_timeout: int
    idle_timeout: int
    max_connections: int
    max_body_bytes: int


def protocol_for(limits: HttpLimits) -> type[asyncio.Protocol]:
    """uvicorn's h11 protocol with `limits`' request deadline and connection cap (`Config(http=...)`)."""
    return type("DevragH11Protocol", (GuardedH11Protocol,), {"limits": limits})


class GuardedH11Protocol(H11Protocol):
    """h11 with a deadline on receiving each request and a cap on open connections.

    The deadline runs while the client owes us a request it has started (or, on a new connection,
    not yet started) and stops once h11 has the whole request; idle keep-alive time between
    requests is uvicorn's own `timeout_keep_alive`.
    """

    limits: ClassVar[HttpLimits]
    refused: ClassVar[int] = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._refuse(transport)
            return
        self._deadline = self.loop.call_later(self.limits.request_timeout, self._expire)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow_request()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        super().connection_lost(exc)

    def _follow_request(self) -> None:
        """Run the deadline while a request is partly received: headers pending or body owed."""
        state = self.conn.their_state
        receiving = state is h11.SEND_BODY or (state is h11.IDLE and bool(self.conn.trailing_data[0]))
        if not receiving:
            self._stop_deadline()
        elif self._deadline is None and not self.transport.is_closing():
            self._deadline = self.loop.call_later(self.limits.request_timeout, self._expire)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            log.debug("closing %s: no complete request within %d s", self.client, self.limits.request_timeout)
            self.transport.abort()  # nothing to flush; abort also frees a socket whose peer stopped reading

    def _refuse(self, transport: asyncio.Transport) -> None:
        cls = type(self)
        cls.refused += 1
        if cls.refused == 1 or cls.refused % 1000 == 0:  # once per burst would need a clock; this is enough
            log.warning(
                "refused %d connections so far: %d open is the cap (DEVRAG_HTTP_MAX_CONNECTIONS)",
                cls.refused,
                self.limits.max_connections,
            )
        transport.write(_FULL)
        transport.close()


class BodyLimit:
    """ASGI middleware: a request body over `max_bytes` gets 413, without reading what is declared.

    A body without Content-Length (chunked) is read up to the limit and handed on from memory.
    The 413 closes the connection, so the rest of the body is never read either.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            if int(declared) > self.max_bytes:  # h11 has already refused a malformed length
                await self._too_large(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            await self.app(scope, receive, send)
            return
        body = await self._read(receive)
        if body is None:
            await self._too_large(scope, receive, send)
            return
        await self.app(scope, _replay(body, receive), send)

    async def _read(self, receive: Receive) -> bytes | None:
        """The whole body, or None once it passes the limit (or the client disconnects)."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return None
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return None
            if not message.get("more_body", False):
                return b"".join(chunks)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {
                "error": "request too large",
                "detail": f"Bodies over {self.max_bytes} bytes are refused (DEVRAG_HTTP_MAX_BODY_BYTES).",
            },
            status_code=413,
            headers={"Connection": "close"},
        )
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive channel that yields `body` once, then whatever the client sends next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def fit_descriptor_limit(max_connections: int) -> int:
    """The connection cap this process can hold: raises the soft descriptor limit when allowed.

    Past the soft limit accept() fails and the server stops taking clients, which is what the cap
    is there to prevent; a cap the hard limit cannot hold is lowered, with a warning.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = max_connections + _RESERVED_DESCRIPTORS
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    if soft != resource.RLIM_INFINITY and soft < needed:
        fitted = max(1, soft - _RESERVED_DESCRIPTORS)
        log.warning(
            "DEVRAG_HTTP_MAX_CONNECTIONS=%d needs %d file descriptors, the limit is %d: capping at %d",
            max_connections,
            needed,
            soft,
            fitted,
        )
        return fitted
    return max_connections
