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


# Forges suggest a long random string; anything shorter can be guessed offline from one signed delivery.
MIN_WEBHOOK_SECRET = 20


class ServeSettings(BaseSettings):
    """How the server is reached; secrets come from DEVRAG_HTTP_TOKEN and DEVRAG_WEBHOOK_SECRET."""

    model_config = SettingsConfigDict(env_prefix="DEVRAG_", extra="ignore")

    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    http_token: SecretStr | None = None
    webhook_secret: SecretStr | None = None
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

    @model_validator(mode="after")
    def _strong_webhook_secret(self) -> Self:
        secret = None if self.webhook_secret is None else self.webhook_secret.get_secret_value()
        if self.transport == "http" and secret is not None and len(secret.strip()) < MIN_WEBHOOK_SECRET:
            raise ValueError(
                f"DEVRAG_WEBHOOK_SECRET is {'blank' if not secret.strip() else 'too short'}: anyone could "
                f"forge pushes. Use at least {MIN_WEBHOOK_SECRET} random characters (`openssl rand -hex 32`) "
                "and give the same secret to the GitHub or GitLab webhook, or unset it to turn webhooks off."
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
    # Several agent sessions share the cores: torch's OpenMP threads otherwise spin while they
    # wait and starve the others (8 sessions: 154 -> 250 searches in 2 minutes, p95 24 -> 8 s).
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from devrag.server.mcp_app import create_server  # MCP loads only when serving

    if serve.transport == "stdio":
        # One line, so a person who starts it by hand sees it waits for a client; stdout is the protocol.
        watching = ", watching repositories" if serve.watch else ""
        click.echo(f"devrag: MCP over stdio, index {settings.store_location}{watching}", err=True)
        anyio.run(create_server(settings, watch=serve.watch).run_stdio_async)
        return
    from devrag.server.http import HOOKS_PREFIX, MCP_PATH, serve_http
    from devrag.server.webhooks import Webhooks

    webhooks = Webhooks(serve.webhook_secret.get_secret_value()) if serve.webhook_secret else None
    server = create_server(settings, watch=serve.watch, companions=[webhooks] if webhooks else [])
    token = serve.http_token.get_secret_value() if serve.http_token else None
    base = f"http://{serve.host}:{serve.port}"
    auth = " (send DEVRAG_HTTP_TOKEN as a Bearer token)" if token else ""
    click.echo(f"devrag: MCP over streamable HTTP at {base}{MCP_PATH}{auth}", err=True)
    if webhooks:
        hooks = f"{base}{HOOKS_PREFIX}github and {base}{HOOKS_PREFIX}gitlab"
        click.echo(f"devrag: push webhooks at {hooks} (signed with DEVRAG_WEBHOOK_SECRET)", err=True)
    anyio.run(serve_http, server, serve.host, serve.port, token, webhooks)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return str(error["msg"]).removeprefix("Value error, ")
