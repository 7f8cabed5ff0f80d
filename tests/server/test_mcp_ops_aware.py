"""Through the MCP tools: metadata filters and citations, list_sources values, destructive warnings."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator

import pytest
from mcp import Client

from tests.server.mcp_support import call, hash_client

pytestmark = pytest.mark.anyio

ETCD = """---
service: etcd
owner: Team-Platform
severity: P1
tags: [control-plane, disk]
alerts: [EtcdMembersDown]
last_reviewed: 2026-01-15
---
# etcd member down

## Check

Run `kubectl get pods -n kube-system -l component=etcd` first.

## Remove the member

```console
$ etcdctl member list
$ etcdctl member remove 8e9e05c52164694d
$ kubectl delete pod etcd-node-3 -n kube-system
```
"""
FILES = {
    "runbooks/etcd-down.md": ETCD,
    "runbooks/ledger/consumer-lag.md": "# Ledger lag\n\n## Check\n\n```bash\nkubectl get pods -n ledger\n"
    "kubectl logs deploy/ledger-worker\n```\n",
    "guides/deploy.md": "---\nservice: checkout\nteam: checkout\n---\n# Deploy\n\n## Steps\n\n"
    "Run `helm upgrade checkout ./chart` then `kubectl get pods`.\n",
}


@pytest.fixture
async def client(tmp_path) -> AsyncIterator[Client]:
    async with hash_client(tmp_path, FILES) as c:
        yield c


async def test_search_warns_before_a_section_with_a_destructive_command_and_classes_each(client):
    answer = await call(client, "search", query="etcd member remove pod", service="ETCD", k=3)
    (result,) = answer["results"]
    remove = next(p for p in result["passages"] if p["headings"] == ["Remove the member"])
    assert remove["commands"] == [
        {"text": "$ etcdctl member list", "kind": "read-only"},
        {"text": "$ etcdctl member remove 8e9e05c52164694d", "kind": "destructive"},
        {"text": "$ kubectl delete pod etcd-node-3 -n kube-system", "kind": "destructive"},
    ]
    lines = answer["_text"].splitlines()
    warning = (
        "! destructive: etcdctl member remove 8e9e05c52164694d; kubectl delete pod etcd-node-3 -n kube-system"
        " — confirm before running"
    )
    at = lines.index(warning)
    assert lines[at + 1].startswith("[1.") and "Remove the member" in lines[at + 1]
    check = next(p for p in result["passages"] if p["headings"] == ["Check"])
    assert [c["kind"] for c in check["commands"]] == ["read-only"]
    assert sum(line.startswith("! destructive") for line in lines) == 1, "read-only sections carry no warning"


async def test_results_carry_metadata_in_the_output_and_a_short_form_in_the_citation_line(client):
    answer = await call(client, "search", query="etcd member", alert="EtcdMembersDown")
    meta = answer["results"][0]["metadata"]
    assert meta == {
        "service": "etcd",
        "service_inferred": False,
        "team": "team-platform",
        "severity": "p1",
        "environment": None,
        "alerts": ["EtcdMembersDown"],
        "tags": ["control-plane", "disk"],
        "last_reviewed": "2026-01-15",
        "other": {},
    }
    review = answer["results"][0]["review"]
    assert (review["last_reviewed"], review["basis"], review["stale"]) == (
        "2026-01-15",
        "last_reviewed",
        True,
    )
    assert review["last_commit_date"] == dt.datetime.now(dt.UTC).date().isoformat()
    assert review["recency"] is None and review["stale_after_days"] == 180
    assert re.search(
        r"\| runbook \| service etcd, team team-platform, sev p1, tags control-plane\+disk, "
        r"reviewed 2026-01-15 \| changed \d{4}-\d\d-\d\d, "
        r"STALE: \d+ days since review \(limit 180\) \| score",
        answer["_text"],
    )
    lag = await call(client, "search", query="ledger lag", service="ledger")
    (only,) = lag["results"]
    assert only["metadata"]["service_inferred"] and "service ledger (from path)" in lag["_text"]
    none = await call(client, "search", query="deploy", team="nobody")
    assert none["results"] == []


async def test_an_empty_metadata_filter_is_refused_in_words(client):
    result = await client.call_tool("search", {"query": "etcd", "service": "  "})
    assert result.is_error and "service is empty" in result.content[0].text


async def test_list_sources_lists_the_metadata_values_per_repository(client):
    answer = await call(client, "list_sources")
    (ops,) = answer["repos"]
    assert ops["metadata"]["service"] == {"checkout": 1, "etcd": 1, "ledger": 1}
    assert ops["metadata"]["team"] == {"checkout": 1, "team-platform": 1}
    assert ops["metadata"]["alerts"] == {"EtcdMembersDown": 1}
    assert "  service: checkout 1, etcd 1, ledger 1" in answer["_text"]
