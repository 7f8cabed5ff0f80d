"""Hardened HTTP: what counts as loopback, token strength, and Host/Origin allow-lists.

Servers run as real `devrag serve --transport http` processes on loopback addresses; requests come
over real sockets, some with a forged Host or Origin as a DNS-rebinding page would send them.
"""

from __future__ import annotations

import secrets
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from devrag.server.serve import ServeSettings
from tests.server.mcp_support import TOOLS, free_port, mcp_client, serve_args, server_env, stop

pytestmark = [pytest.mark.anyio, pytest.mark.model]

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "0"},
    },
}


@contextmanager
def serving(tmp_path: Path, host: str, token: str, **env: str) -> Iterator[str]:
    """A server bound to `host` on a free port; yields its `host:port` once it accepts connections."""
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, *serve_args("--transport", "http", "--host", host, "--port", str(port))],
            env=server_env(tmp_path / "index", DEVRAG_HTTP_TOKEN=token, **env),
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=err,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"server exited {process.returncode}: {log.read_text()}"
            assert time.monotonic() < deadline, f"server did not listen: {log.read_text()}"
            try:
                socket.create_connection((host, port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        yield f"{host}:{port}"
    finally:
        stop(process)


def post(address: str, token: str, **headers: str) -> httpx.Response:
    """An `initialize` to `address`, with the token and any Host/Origin the caller forges."""
    base = {"Authorization": f"Bearer {token}", "Accept": "application/json, text/event-stream"}
    return httpx.post(f"http://{address}/mcp", json=INITIALIZE, headers=base | headers, timeout=30)


@pytest.mark.parametrize("host", ["127.0.0.2", "127.1.2.3", "::ffff:127.0.0.1", "0.0.0.0"])
def test_only_the_exact_loopback_names_go_without_a_token(host, monkeypatch):
    monkeypatch.delenv("DEVRAG_HTTP_TOKEN", raising=False)
    with pytest.raises(ValidationError, match="DEVRAG_HTTP_TOKEN"):
        ServeSettings(transport="http", host=host)
    for loopback in ("127.0.0.1", "::1", "localhost"):
        assert ServeSettings(transport="http", host=loopback).http_token is None


@pytest.mark.parametrize("weak", ["a", " " * 40, "x" * 31, " " + "y" * 30 + " "])
def test_a_short_or_blank_token_beyond_loopback_is_refused(weak):
    with pytest.raises(ValidationError, match=r"openssl rand -hex 32") as raised:
        ServeSettings(transport="http", host="0.0.0.0", http_token=weak)  # type: ignore[arg-type]
    assert "too short" in str(raised.value) or "blank" in str(raised.value)
    strong = ServeSettings(transport="http", host="0.0.0.0", http_token="z" * 32)  # type: ignore[arg-type]
    assert strong.http_token is not None


def test_a_weak_token_stops_the_server_at_startup_with_advice(tmp_path):
    command = [sys.executable, *serve_args("--transport", "http", "--host", "127.0.0.2", "--port", "0")]
    env = server_env(tmp_path / "index", DEVRAG_HTTP_TOKEN="a")
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "too short" in result.stderr and "openssl rand -hex 32" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_allowed_hosts_entry_is_refused():
    with pytest.raises(ValidationError, match="DEVRAG_ALLOWED_HOSTS"):
        ServeSettings(transport="http", allowed_hosts="ops-box,https://ops-box/mcp")


async def test_a_forged_host_or_origin_is_rejected_beyond_the_exact_loopback_names(tmp_path):
    token = secrets.token_hex(32)
    with serving(tmp_path, "127.0.0.2", token) as address:
        port = address.rpartition(":")[2]
        assert post(address, token, Host=f"evil.example:{port}").status_code == 421
        assert post(address, token, Host=f"127.0.0.2:{int(port) + 1}").status_code == 421
        assert post(address, token, Origin="http://evil.example").status_code == 403
        assert post(address, token, Origin=f"http://{address}").status_code == 200
        assert post(address, token).status_code == 200
        async with mcp_client(f"http://{address}/mcp", token) as client:
            tools = await client.list_tools()
    assert {t.name for t in tools.tools} == TOOLS


async def test_allowed_hosts_admit_the_names_clients_use_and_nothing_else(tmp_path):
    token = secrets.token_hex(32)
    with serving(
        tmp_path, "127.0.0.1", token, DEVRAG_ALLOWED_HOSTS="ops-box, ops.example.com:443"
    ) as address:
        port = address.rpartition(":")[2]
        for host in (f"ops-box:{port}", "ops-box", "ops.example.com:443", f"localhost:{port}"):
            assert post(address, token, Host=host).status_code == 200, host
        assert post(address, token, Host="ops-box", Origin="https://ops-box").status_code == 200
        assert post(address, token, Host="ops.example.com:8443").status_code == 421
        assert post(address, token, Host=f"evil.example:{port}").status_code == 421
        assert post(address, token, Origin="https://evil.example").status_code == 403
