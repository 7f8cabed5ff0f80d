"""Push webhooks, end to end: signed deliveries to a real `devrag serve --transport http`, with a bare
repository in a temp dir as the remote of the indexed clone."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from click.testing import CliRunner

from devrag.server.cli import main
from tests.server.mcp_support import (
    OPS_FILES,
    free_port,
    ingest_repo,
    mcp_client,
    start_http,
    stop,
)
from tests.support import GitRepo

pytestmark = [pytest.mark.anyio, pytest.mark.model]

_DOCS = ("runbooks/disk.md", "runbooks/crashloop.md", "postmortems/2026-03-checkout-outage.md")


@dataclass(frozen=True)
class Hooked:
    base: str
    token: str
    secret: str
    bare: Path
    clone: Path  # the indexed clone of `bare`
    author: GitRepo  # pushes to the bare remote, as a teammate would
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory, real_embedder) -> Iterator[Hooked]:
    root = Path(tmp_path_factory.mktemp("hooks"))
    bare = root / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    author = GitRepo(root / "author")
    author.commit({p: OPS_FILES[p] for p in _DOCS}, "ops docs")
    author.git("remote", "add", "origin", str(bare))
    author.git("push", "-q", "origin", "main")
    author.git("clone", "-q", str(bare), str(root / "clone"))
    ingest_repo(root / "index", GitRepo(root / "clone"), real_embedder, "ops")
    port, token, secret = free_port(), secrets.token_urlsafe(24), secrets.token_hex(32)
    log = root / "server.log"
    process = start_http(root / "index", port, token, log, DEVRAG_WEBHOOK_SECRET=secret)
    yield Hooked(f"http://127.0.0.1:{port}", token, secret, bare, root / "clone", author, process)
    stop(process)


def push(hooked: Hooked, files: dict[str, str | bytes | None]) -> str:
    commit = hooked.author.commit(files)
    hooked.author.git("push", "-q", "origin", "main")
    return commit


def github_push(after: str, url: str, ref: str = "refs/heads/main") -> dict[str, Any]:
    repository = {
        "full_name": "acme/ops",
        "default_branch": "main",
        "clone_url": url,
        "ssh_url": "git@github.com:acme/ops-mirror.git",
        "html_url": "https://github.com/acme/ops-mirror",
        "git_url": "git://github.com/acme/ops-mirror.git",
    }
    return {"ref": ref, "before": "0" * 40, "after": after, "repository": repository}


def gitlab_push(after: str, url: str) -> dict[str, Any]:
    project = {
        "path_with_namespace": "acme/ops",
        "default_branch": "main",
        "git_http_url": url,
        "git_ssh_url": "git@gitlab.example.com:acme/ops-mirror.git",
        "web_url": "https://gitlab.example.com/acme/ops-mirror",
    }
    return {"object_kind": "push", "ref": "refs/heads/main", "after": after, "project": project}


def to_github(
    hooked: Hooked,
    payload: dict[str, Any] | bytes,
    event: str = "push",
    delivery: str | None = None,
    secret: str | None = None,
) -> httpx.Response:
    """POST like GitHub does: the raw body signed with HMAC-SHA256, no bearer token."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    digest = hmac.new((secret or hooked.secret).encode(), body, hashlib.sha256).hexdigest()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery or str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
    }
    return httpx.post(f"{hooked.base}/hooks/github", content=body, headers=headers)


def to_gitlab(hooked: Hooked, payload: dict[str, Any], token: str) -> httpx.Response:
    headers = {
        "X-Gitlab-Event": "Push Hook",
        "X-Gitlab-Token": token,
        "X-Gitlab-Event-UUID": str(uuid.uuid4()),
    }
    return httpx.post(f"{hooked.base}/hooks/gitlab", json=payload, headers=headers)


async def indexed_commit(hooked: Hooked) -> str:
    async with mcp_client(f"{hooked.base}/mcp", hooked.token) as client:
        sources = await client.call_tool("list_sources", {})
    repos = {r["name"]: r for r in sources.structured_content["repos"]}
    return str(repos["ops"]["indexed_commit"])


async def wait_until_indexed(hooked: Hooked, commit: str) -> float:
    """Seconds until `ops` is indexed at `commit`."""
    started = time.perf_counter()
    while (seen := await indexed_commit(hooked)) != commit:
        assert time.perf_counter() - started < 90, f"still indexed at {seen[:12]}, not {commit[:12]}"
        await anyio.sleep(0.25)
    return time.perf_counter() - started


async def test_a_signed_github_push_to_the_default_branch_is_fetched_and_indexed_at_the_pushed_commit(hooked):
    fix = "# ZookeeperSessionExpired\n\n## Fix\n\nRestart `kafka-broker-3` and check its session timeout.\n"
    after = push(hooked, {"runbooks/zookeeper.md": fix})
    response = to_github(hooked, github_push(after, str(hooked.bare)))
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "accepted" and "ops" in response.json()["detail"]
    print(f"indexed {await wait_until_indexed(hooked, after):.2f} s after the delivery")
    query = {"query": "ZookeeperSessionExpired kafka-broker-3", "k": 1, "repo": "ops"}
    async with mcp_client(f"{hooked.base}/mcp", hooked.token) as client:
        top = (await client.call_tool("search", query)).structured_content["results"][0]
    assert top["path"] == "runbooks/zookeeper.md" and top["commit"] == after
    head = subprocess.run(
        ["git", "-C", str(hooked.clone), "rev-parse", "HEAD"], capture_output=True, text=True
    )
    assert head.stdout.strip() == after  # fast-forwarded, so freshness does not call the index behind


def test_the_mcp_endpoint_stays_behind_the_bearer_token_with_webhooks_on(hooked):
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}}
    assert httpx.post(f"{hooked.base}/mcp", json=initialize).status_code == 401


async def test_a_redelivered_push_is_a_no_op(hooked):
    after = push(hooked, {"runbooks/redis.md": "# RedisDown\n\n## Fix\n\nRestart `redis-sentinel`.\n"})
    delivery = str(uuid.uuid4())
    first = to_github(hooked, github_push(after, str(hooked.bare)), delivery=delivery)
    again = to_github(hooked, github_push(after, str(hooked.bare)), delivery=delivery)
    assert first.status_code == 202, first.text
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    await wait_until_indexed(hooked, after)
    same_commit = to_github(hooked, github_push(after, str(hooked.bare)))
    assert same_commit.status_code == 200 and same_commit.json()["status"] == "up to date"


async def test_a_bad_or_missing_signature_gets_401_and_nothing_is_indexed(hooked):
    before = await indexed_commit(hooked)
    after = push(hooked, {"runbooks/forged.md": "# Forged\n\nNever indexed.\n"})
    payload = github_push(after, str(hooked.bare))
    forged = to_github(hooked, payload, secret="not-the-secret-" + "0" * 20)
    body = json.dumps(payload).encode()
    unsigned = httpx.post(f"{hooked.base}/hooks/github", content=body, headers={"X-GitHub-Event": "push"})
    assert (forged.status_code, unsigned.status_code) == (401, 401)
    assert await indexed_commit(hooked) == before


async def test_a_gitlab_push_hook_with_the_secret_token_is_indexed(hooked):
    after = push(hooked, {"runbooks/etcd.md": "# EtcdNoLeader\n\n## Fix\n\nCheck `etcd-2` peers.\n"})
    payload = gitlab_push(after, hooked.bare.as_uri())  # file:// URL; the clone's origin is a path
    assert to_gitlab(hooked, payload, "wrong-token").status_code == 401
    response = to_gitlab(hooked, payload, hooked.secret)
    assert response.status_code == 202, response.text
    await wait_until_indexed(hooked, after)


def test_a_push_for_a_repository_that_is_not_indexed_gets_404(hooked):
    response = to_github(hooked, github_push("a" * 40, "https://github.com/acme/payments.git"))
    assert response.status_code == 404 and "devrag ingest" in response.json()["detail"]


def test_pushes_to_other_branches_and_other_events_are_ignored(hooked):
    feature = github_push("b" * 40, str(hooked.bare), ref="refs/heads/feature")
    responses = [to_github(hooked, feature), to_github(hooked, {"zen": "Keep it simple."}, event="ping")]
    assert [(r.status_code, r.json()["status"]) for r in responses] == [(200, "ignored"), (200, "ignored")]
    assert "not the default branch main" in responses[0].json()["detail"]


def test_a_body_that_is_not_a_push_payload_gets_400(hooked):
    for body in (b"{not json", json.dumps({"ref": "refs/heads/main"}).encode()):
        assert to_github(hooked, body).status_code == 400


def test_without_a_webhook_secret_the_hooks_are_404(tmp_path):
    port = free_port()
    process = start_http(tmp_path / "index", port, secrets.token_urlsafe(24), tmp_path / "server.log")
    try:
        response = httpx.post(
            f"http://127.0.0.1:{port}/hooks/github", json={}, headers={"X-GitHub-Event": "push"}
        )
    finally:
        stop(process)
    assert response.status_code == 404 and "DEVRAG_WEBHOOK_SECRET" in response.json()["detail"]


def test_a_blank_or_short_webhook_secret_is_refused_at_startup(monkeypatch, tmp_path):
    monkeypatch.setenv("DEVRAG_INDEX_DIR", str(tmp_path / "index"))
    for weak in ("", "   ", "hunter2"):
        monkeypatch.setenv("DEVRAG_WEBHOOK_SECRET", weak)
        result = CliRunner().invoke(main, ["serve", "--transport", "http"])
        assert result.exit_code == 1
        assert "DEVRAG_WEBHOOK_SECRET" in result.output and "Traceback" not in result.output
