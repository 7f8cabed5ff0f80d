"""Streamable HTTP at /mcp, with a bearer token wherever the server is reachable beyond loopback.

On every address, /mcp answers only requests whose Host (and Origin, when a browser sends one) names
this server: a web page the user opens could otherwise point its own DNS name at 127.0.0.1 or the
LAN address (DNS rebinding) and drive the tools from the browser.

Beside it, `/hooks/*` takes push webhooks when they are on. Forges cannot send the bearer token;
they sign each delivery with the webhook secret instead, so `/hooks/*` sits outside the gate.

Every connection, authorised or not, lives under `http_limits`: a deadline for sending each
request, an idle timeout, a cap on open connections and a body limit.
"""

from __future__ import annotations

import hmac
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from devrag.server.http_limits import BodyLimit, HttpLimits, fit_descriptor_limit, protocol_for

if TYPE_CHECKING:
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


class HooksBesideGate:
    """ASGI router: `/hooks/*` to the webhook endpoints (or 404 when they are off), the rest to MCP.

    Lifespan events go to the MCP app, whose lifespan opens the index the webhooks use too.
    """

    def __init__(self, mcp: ASGIApp, hooks: ASGIApp | None) -> None:
        self.mcp, self.hooks = mcp, hooks

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope["path"]).startswith(HOOKS_PREFIX):
            await self.mcp(scope, receive, send)
        elif self.hooks is not None:
            await self.hooks(scope, receive, send)
        else:
            off = JSONResponse(
                {
                    "error": "not found",
                    "detail": "Webhooks are off: set DEVRAG_WEBHOOK_SECRET to receive pushes.",
                },
                status_code=404,
            )
            await off(scope, receive, send)


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
    if token:
        app = BearerTokenGate(app, token)
    app = HooksBesideGate(BodyLimit(app, limits.max_body_bytes), webhooks.asgi() if webhooks else None)
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
