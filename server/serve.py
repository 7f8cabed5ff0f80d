"""`devrag serve`: the MCP server over stdio (default) or streamable HTTP."""

from __future__ import annotations

import os
from functools import partial
from typing import TYPE_CHECKING, Literal, Self

import anyio
import click
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    from devrag.server.cli import Context
    from devrag.server.http_limits import HttpLimits


# Forges suggest a long random string; anything shorter can be guessed offline from one signed delivery.
MIN_WEBHOOK_SECRET = 20
# The bearer token is checked online, but a server beyond loopback is open to the whole network for as long
# as it runs: 32 characters is what `openssl rand -hex 16` gives, and what no one types by hand.
MIN_HTTP_TOKEN = 32
# Only these names go without a token: 127.0.0.2 and the rest of 127/8 are loopback to the kernel, but are
# easily forwarded, NAT-ed or shared with containers by mistake, and the SDK leaves their Host checks off.
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class ServeSettings(BaseSettings):
    """How the server is reached; secrets come from DEVRAG_HTTP_TOKEN and DEVRAG_WEBHOOK_SECRET."""

    model_config = SettingsConfigDict(env_prefix="DEVRAG_", extra="ignore")

    transport: Literal["stdio", "http"] = "stdio"
    host: str = "127.0.0.1"
    port: int = Field(default=8765, ge=0, le=65535)
    http_token: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    allowed_hosts: str = ""
    """Comma-separated `host[:port]` names clients may use in Host (and Origin) beside the bound address."""
    watch: bool = False
    # Limits on every HTTP connection (devrag.server.http_limits says why each is needed). An MCP
    # request is a few kilobytes sent at once (the longest search query, 8,000 tokens, is about
    # 40 KB) and a client session holds about two connections (its POSTs and one event stream).
    http_request_timeout: int = Field(default=10, ge=1)
    """Seconds a client has to send a whole request, headers and body, before it is disconnected."""
    http_idle_timeout: int = Field(default=30, ge=1)
    """Seconds an idle keep-alive connection stays open: above the 5-15 s HTTP clients keep them."""
    http_max_connections: int = Field(default=512, ge=1)
    """Open connections past which a new one gets 503 and is closed: some 250 agent sessions."""
    http_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    """Largest request body /mcp takes; a larger one gets 413 unread. 25 times the longest query."""
    lag_refresh_seconds: float = Field(default=30.0, gt=0, le=60)
    """How often /metrics' index lag is recomputed from each clone's HEAD (also after each ingest)."""

    @model_validator(mode="after")
    def _token_beyond_loopback(self) -> Self:
        if self.transport != "http" or is_loopback(self.host):
            return self
        token = None if self.http_token is None else self.http_token.get_secret_value()
        if not token:
            raise ValueError(
                f"--host {self.host} would expose the index beyond this machine without a password. "
                "Set DEVRAG_HTTP_TOKEN to a long random secret (`openssl rand -hex 32`; clients send it as "
                "`Authorization: Bearer <token>`), or bind 127.0.0.1."
            )
        if len(token.strip()) < MIN_HTTP_TOKEN:
            raise ValueError(
                f"DEVRAG_HTTP_TOKEN is {'blank' if not token.strip() else 'too short'} for --host "
                f"{self.host}: anyone on the network could guess it. Use at least {MIN_HTTP_TOKEN} random "
                "characters (`openssl rand -hex 32`), or bind 127.0.0.1."
            )
        return self

    @model_validator(mode="after")
    def _valid_allowed_hosts(self) -> Self:
        for entry in self.allowed_host_list():
            name, port = split_host_port(entry)
            if not name or any(c in name for c in "/@ ") or not (port is None or port.isdigit()):
                raise ValueError(
                    f"DEVRAG_ALLOWED_HOSTS entry {entry!r} is not `host` or `host:port` "
                    "(e.g. `ops-box:8765,ops-box.example.com`; no scheme, no path)."
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

    def http_limits(self) -> HttpLimits:
        from devrag.server.http_limits import HttpLimits  # uvicorn loads only when serving HTTP

        return HttpLimits(
            request_timeout=self.http_request_timeout,
            idle_timeout=self.http_idle_timeout,
            max_connections=self.http_max_connections,
            max_body_bytes=self.http_max_body_bytes,
        )

    def allowed_host_list(self) -> list[str]:
        """The DEVRAG_ALLOWED_HOSTS entries, blanks dropped (a trailing comma is harmless)."""
        return [entry.strip() for entry in self.allowed_hosts.split(",") if entry.strip()]


def is_loopback(host: str) -> bool:
    """Whether `host` is one of the loopback names that may go without a token.

    Only the exact names: other loopback addresses (127.0.0.2, ::ffff:127.0.0.1) reach the same
    kernel interface but are easy to route or proxy to by mistake, so they count as exposed.
    """
    return host in LOOPBACK_HOSTS


def split_host_port(entry: str) -> tuple[str, str | None]:
    """`ops-box:8765` -> (`ops-box`, `8765`); `[::1]:8765` -> (`[::1]`, `8765`); no port -> None."""
    if entry.startswith("["):
        name, _, rest = entry.partition("]")
        return name + "]", rest.removeprefix(":") if rest else None
    if entry.count(":") == 1:
        name, _, port = entry.partition(":")
        return name, port
    return entry, None


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
    help="HTTP address to bind; anything but 127.0.0.1, ::1 or localhost needs DEVRAG_HTTP_TOKEN.",
)
@click.option("--port", type=int, default=8765, show_default=True, help="HTTP port.")
@click.option("--watch", is_flag=True, help="Re-index repositories in the background on new commits.")
@click.pass_obj
def serve_cmd(obj: Context, transport: str, host: str, port: int, watch: bool) -> None:
    """Serve the index to agents over MCP: search, search_alert, get_document, list_sources, feedback."""
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
    from devrag.server.http import HOOKS_PREFIX, MCP_PATH, serve_http, transport_security
    from devrag.server.metrics import ServerMetrics
    from devrag.server.operations import Operations
    from devrag.server.webhooks import Webhooks

    webhooks = Webhooks(serve.webhook_secret.get_secret_value()) if serve.webhook_secret else None
    security = transport_security(serve.host, serve.port, serve.allowed_host_list())
    metrics = ServerMetrics()
    operations = Operations(metrics, security, serve.lag_refresh_seconds)
    companions = [operations, webhooks] if webhooks else [operations]
    server = create_server(settings, watch=serve.watch, companions=companions, local=False, metrics=metrics)
    token = serve.http_token.get_secret_value() if serve.http_token else None
    base = f"http://{serve.host}:{serve.port}"
    auth = " (send DEVRAG_HTTP_TOKEN as a Bearer token)" if token else ""
    click.echo(f"devrag: MCP over streamable HTTP at {base}{MCP_PATH}{auth}", err=True)
    if webhooks:
        hooks = f"{base}{HOOKS_PREFIX}github and {base}{HOOKS_PREFIX}gitlab"
        click.echo(f"devrag: push webhooks at {hooks} (signed with DEVRAG_WEBHOOK_SECRET)", err=True)
    click.echo(f"devrag: metrics at {base}/metrics, health at {base}/healthz and {base}/readyz", err=True)
    click.echo(f"devrag: clients may send Host {', '.join(security.allowed_hosts)}", err=True)
    limits = serve.http_limits()
    run = partial(serve_http, limits=limits, operations=operations)
    anyio.run(run, server, serve.host, serve.port, token, webhooks, security)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return str(error["msg"]).removeprefix("Value error, ")
