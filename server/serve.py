"""`devrag serve`: the MCP server over stdio (default) or streamable HTTP."""

from __future__ import annotations

import ipaddress
import os
from typing import TYPE_CHECKING, Literal, Self

import anyio
import click
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from devrag.server.cli import Context


class ServeSettings(BaseSettings):
    """How the server is reached; the token comes from DEVRAG_HTTP_TOKEN."""

    model_config = SettingsConfigDict(env_prefix="DEVRAG_", extra="ignore")

    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    http_token: SecretStr | None = None
    watch: bool = False

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> Self:
        if self.transport == "http" and not is_loopback(self.host) and not self.http_token:
            raise ValueError(
                f"--host {self.host} would expose the index beyond this machine without a password. "
                "Set DEVRAG_HTTP_TOKEN to a long random secret (clients send it as "
                "`Authorization: Bearer <token>`), or bind 127.0.0.1."
            )
        return self


def is_loopback(host: str) -> bool:
    """Whether binding `host` keeps the server reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@click.command("serve")
@click.option(
    "--transport",
    type=click.Choice(["stdio", "http", "streamable-http"]),
    default="stdio",
    show_default=True,
    help="stdio for one local agent; http (streamable HTTP at /mcp) to share one server.",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="HTTP address to bind; anything but loopback needs DEVRAG_HTTP_TOKEN.",
)
@click.option("--port", type=int, default=8765, show_default=True, help="HTTP port.")
@click.option("--watch", is_flag=True, help="Re-index repositories in the background on new commits.")
@click.pass_obj
def serve_cmd(obj: Context, transport: str, host: str, port: int, watch: bool) -> None:
    """Serve the index to coding agents over MCP: search, get_document, list_sources."""
    kind = "http" if transport == "streamable-http" else transport
    try:
        serve = ServeSettings(transport=kind, host=host, port=port, watch=watch)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise click.ClickException(_first_error(exc)) from exc
    settings = obj.settings()
    # Tokenizers warn on every fork after first use (git runs as a subprocess on each search), and
    # transformers on every count of a text longer than the model reads (the token budget does that).
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from devrag.server.mcp_app import create_server  # MCP loads only when serving

    server = create_server(settings, watch=serve.watch)
    if serve.transport == "stdio":
        anyio.run(server.run_stdio_async)
        return
    from devrag.server.http import MCP_PATH, serve_http

    token = serve.http_token.get_secret_value() if serve.http_token else None
    auth = " (send DEVRAG_HTTP_TOKEN as a Bearer token)" if token else ""
    click.echo(
        f"devrag: MCP over streamable HTTP at http://{serve.host}:{serve.port}{MCP_PATH}{auth}", err=True
    )
    anyio.run(serve_http, server, serve.host, serve.port, token)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return str(error["msg"]).removeprefix("Value error, ")
