"""Streamable HTTP at /mcp, with a bearer token wherever the server is reachable beyond loopback.

On every address, /mcp answers only requests whose Host (and Origin, when a browser sends one) names
this server: a web page the user opens could otherwise point its own DNS name at 127.0.0.1 or the
LAN address (DNS rebinding) and drive the tools from the browser.

Beside it, `/hooks/*` takes push webhooks when they are on. Forges cannot send the bearer token;
they sign each delivery with the webhook secret instead, so `/hooks/*` sits outside the gate.
`/metrics` sits inside it; `/healthz` and `/readyz` outside (devrag.server.operations says why).

Every connection, authorised or not, lives under `http_limits`: a deadline for sending each
request, an idle timeout, a cap on open connections and a body limit.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from devrag.server.http_limits import BodyLimit, HttpLimits, fit_descriptor_limit, protocol_for

if TYPE_CHECKING:
    from devrag.server.operations import Operations
    from devrag.server.webhooks import Webhooks

MCP_PATH = "/mcp"
HOOKS_PREFIX = "/hooks/"
# On SIGTERM, searches in flight get this long to answer before their tasks are cancelled.
_SHUTDOWN_GRACE_S = 5


class BearerTokenGate:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>`, else 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not self._authorized(scope):
            response = JSONResponse(
                {"error": "unauthorized", "detail": "Send the DEVRAG_HTTP_TOKEN as a Bearer token."},
                status_code=401,
                headers={"WWW-Authenticate": 'Bearer realm="devrag"'},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _authorized(self, scope: Scope) -> bool:
        """The scheme is matched without regard to case (RFC 7235), the token in constant time."""
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        scheme, _, token = given.partition(b" ")
        return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self._expected)


class PathRouter:
    """ASGI router: a path listed in `routes` (or under a listed `prefix/`) to its app; the rest to `default`.

    Lifespan events go to `default`, the MCP app, whose lifespan opens the index every route uses.
    """

    def __init__(self, default: ASGIApp, routes: Mapping[str, ASGIApp]) -> None:
        self.default, self.routes = default, routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        app = self._route(str(scope["path"])) if scope["type"] == "http" else None
        await (app or self.default)(scope, receive, send)

    def _route(self, path: str) -> ASGIApp | None:
        for key, app in self.routes.items():
            if path == key or (key.endswith("/") and path.startswith(key)):
                return app
        return None


WEBHOOKS_OFF = JSONResponse(
    {"error": "not found", "detail": "Webhooks are off: set DEVRAG_WEBHOOK_SECRET to receive pushes."},
    status_code=404,
)


def transport_security(host: str, port: int, extra: list[str]) -> TransportSecuritySettings:
    """The Host/Origin allow-list for a server bound to `host:port`, plus `extra` (`host[:port]`).

    The SDK checks Host and Origin only for exactly 127.0.0.1, ::1 and localhost, and then with any
    port; every other bind (0.0.0.0 included) would be left open, so devrag always passes a list:
    the bound address, `localhost` and `127.0.0.1` on this port, and whatever names clients use to
    reach it (DEVRAG_ALLOWED_HOSTS). An entry without a port allows any port, and none, as a
    reverse proxy on 443 sends; origins follow from the names, over http and https.
    """
    on_port = "*" if port == 0 else str(port)  # port 0: the kernel picks one, unknown until bound
    bound = f"[{host}]" if ":" in host else host
    names = [f"{name}:{on_port}" for name in dict.fromkeys([bound, "localhost", "127.0.0.1"])] + extra
    hosts: list[str] = []
    for name in names:
        hosts += [name] if name.rpartition(":")[2].isdigit() or name.endswith(":*") else [name, f"{name}:*"]
    hosts = list(dict.fromkeys(hosts))
    origins = [f"{scheme}://{name}" for name in hosts for scheme in ("http", "https")]
    return TransportSecuritySettings(allowed_hosts=hosts, allowed_origins=origins)


async def serve_http(
    server: MCPServer[Any],
    host: str,
    port: int,
    token: str | None,
    webhooks: Webhooks | None = None,
    security: TransportSecuritySettings | None = None,
    *,
    limits: HttpLimits,
    operations: Operations | None = None,
) -> None:
    """Serve until interrupted; uvicorn's logs go through logging, so to stderr.

    `security` defaults to `transport_security(host, port, [])`: Host/Origin checks on every bind.
    The body limit of `limits` guards /mcp only: webhooks have their own, as large as a forge's
    payloads.
    """
    import uvicorn

    security = security or transport_security(host, port, [])
    app: ASGIApp = server.streamable_http_app(
        streamable_http_path=MCP_PATH, host=host, transport_security=security
    )
    outside: dict[str, ASGIApp] = {HOOKS_PREFIX: webhooks.asgi() if webhooks else WEBHOOKS_OFF}
    if operations is not None:
        from devrag.server.operations import HEALTH_PATH, METRICS_PATH, READY_PATH

        app = PathRouter(app, {METRICS_PATH: operations.metrics_app()})
        health = operations.health_app()
        outside |= {HEALTH_PATH: health, READY_PATH: health}
    if token:
        app = BearerTokenGate(app, token)
    app = PathRouter(BodyLimit(app, limits.max_body_bytes), outside)
    fitted = replace(limits, max_connections=fit_descriptor_limit(limits.max_connections))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol_for(fitted),
        timeout_keep_alive=limits.idle_timeout,
        timeout_graceful_shutdown=_SHUTDOWN_GRACE_S,
        log_config=None,
        log_level="warning",
        access_log=False,
    )
    await uvicorn.Server(config).serve()
