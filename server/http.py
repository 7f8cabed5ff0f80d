"""Streamable HTTP at /mcp, with a bearer token wherever the server is reachable beyond loopback."""

from __future__ import annotations

import hmac
from typing import Any

from mcp.server.mcpserver import MCPServer
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

MCP_PATH = "/mcp"


class BearerTokenGate:
    """ASGI middleware: every HTTP request must carry `Authorization: Bearer <token>`, else 401."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()

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
        given = dict(scope.get("headers") or []).get(b"authorization", b"")
        return hmac.compare_digest(given, self._expected)


async def serve_http(server: MCPServer[Any], host: str, port: int, token: str | None) -> None:
    """Serve until interrupted; uvicorn's logs go through logging, so to stderr."""
    import uvicorn

    app: ASGIApp = server.streamable_http_app(streamable_http_path=MCP_PATH, host=host)
    if token:
        app = BearerTokenGate(app, token)
    config = uvicorn.Config(app, host=host, port=port, log_config=None, log_level="warning", access_log=False)
    await uvicorn.Server(config).serve()
