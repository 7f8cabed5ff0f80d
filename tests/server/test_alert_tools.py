"""Alerts through the MCP tools and the CLI: search_alert's routes, alert_match in search, bad pastes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest
from mcp import Client

from tests.server.mcp_support import call, hash_client

CRASH = "runbooks/kubernetes/KubePodCrashLooping.md"
QUOTA = "runbooks/kubernetes/KubeQuotaFullyUsed.md"
FILES = {
    CRASH: "# KubePodCrashLooping\n\n## Meaning\n\nA pod restarts again and again.\n\n## Mitigation\n\n"
    "Run `kubectl logs --previous` on the pod.\n",
    QUOTA: "# KubeQuotaFullyUsed\n\n## Meaning\n\nA namespace uses all of its resource quota.\n",
    "runbooks/kubernetes/KubeQuotaAlmostFull.md": "# KubeQuotaAlmostFull\n\n## Meaning\n\nA namespace is "
    "close to its resource quota.\n",
    "guides/pods.md": "# Pods\n\n## Restarts\n\nA pod that restarts again and again: read its logs.\n",
    "rules/apps.yaml": "groups:\n- name: apps\n  rules:\n  - alert: CheckoutPodsRestarting\n"
    "    annotations:\n      runbook_url: https://runbooks.example.dev/runbooks/kubernetes/kubepodcrashlooping\n",
}
WEBHOOK = {
    "version": "4",
    "status": "firing",
    "commonLabels": {"alertname": "KubeQuotaFullyUsed", "namespace": "payments"},
    "commonAnnotations": {"runbook_url": f"https://github.com/acme/ops/blob/main/{CRASH}"},
    "alerts": [
        {
            "labels": {"alertname": "KubeQuotaFullyUsed"},
            "annotations": {
                "summary": "Namespace quota is fully used.",
                "description": "payments uses 100%.",
            },
        }
    ],
}


@pytest.fixture
async def client(tmp_path) -> AsyncIterator[Client]:
    async with hash_client(tmp_path, FILES) as c:
        yield c


@pytest.mark.anyio
async def test_search_alert_answers_by_runbook_url_then_catalogue_then_search(client):
    answer = await call(client, "search_alert", alert=json.dumps(WEBHOOK), k=4)
    results = answer["results"]
    assert [(r["path"], r["route"]) for r in results[:2]] == [(CRASH, "runbook_url"), (QUOTA, "catalogue")]
    assert {r["route"] for r in results[2:]} == {"search"} and len(results) == 4
    assert results[1]["alert_match"] == {
        "alert": "KubeQuotaFullyUsed",
        "source": "title",
        "rule": None,
        "runbook_url": None,
    }
    lines = answer["_text"].splitlines()
    assert lines[0].startswith(f"[1] ops:{CRASH}") and lines[0].endswith(
        "| runbook_url of KubeQuotaFullyUsed"
    )
    assert any(
        line.startswith(f"[2] ops:{QUOTA}") and line.endswith("catalogue: KubeQuotaFullyUsed (title)")
        for line in lines
    )


@pytest.mark.anyio
async def test_search_alert_reads_an_alert_pasted_as_text_and_a_rule_files_mapping(client):
    answer = await call(
        client, "search_alert", alert="alertname: CheckoutPodsRestarting\nsummary: pods restart", k=2
    )
    first = answer["results"][0]
    assert (first["path"], first["route"]) == (CRASH, "catalogue")
    assert first["alert_match"]["source"] == "rule" and first["alert_match"]["rule"] == "ops:rules/apps.yaml"
    assert "catalogue: CheckoutPodsRestarting (rule ops:rules/apps.yaml)" in answer["_text"]


@pytest.mark.anyio
async def test_search_puts_a_catalogued_alert_named_in_the_query_first_with_its_match(client):
    answer = await call(client, "search", query="KubeQuotaAlmostFull namespace resource quota", k=3)
    first = answer["results"][0]
    assert first["path"] == "runbooks/kubernetes/KubeQuotaAlmostFull.md" and first["route"] == "catalogue"
    assert [r["route"] for r in answer["results"][1:]] == ["search", "search"]


@pytest.mark.anyio
async def test_a_runbook_url_that_names_no_indexed_document_is_said(client):
    wiki = "https://wiki.example.dev/ops/checkout-down"
    answer = await call(client, "search_alert", alert=f"alertname: CheckoutDown\nrunbook_url: {wiki}", k=2)
    assert f"runbook_url {wiki} names no indexed document" in answer["_text"]
    known = await call(client, "search_alert", alert=json.dumps(WEBHOOK), k=2)
    assert "names no indexed document" not in known["_text"]


@pytest.mark.anyio
@pytest.mark.parametrize("paste", ["{}", '{"alerts": []}', "   "])
async def test_a_paste_without_an_alert_is_a_tool_error_in_words(client, paste):
    result = await client.call_tool("search_alert", {"alert": paste})
    assert result.is_error
    assert "found no alert name, runbook_url, summary or description" in result.content[0].text


@pytest.fixture
def indexed_cli(cli, git_repo):
    repo = git_repo("ops")
    repo.commit(FILES)
    cli("ingest", str(repo.path))
    return cli


@pytest.mark.model
def test_devrag_alert_reads_a_file_or_stdin_and_says_the_route(indexed_cli, tmp_path):
    paste = tmp_path / "alert.json"
    paste.write_text(json.dumps(WEBHOOK), encoding="utf-8")
    answer = json.loads(indexed_cli("alert", "--file", str(paste), "--no-rerank", "-k", "3", "--json"))
    assert [(r["path"], r["route"]) for r in answer["results"][:2]] == [
        (CRASH, "runbook_url"),
        (QUOTA, "catalogue"),
    ]
    human = indexed_cli("alert", "alertname: KubeQuotaFullyUsed", "--no-rerank", "-k", "2")
    assert "found by catalogue: KubeQuotaFullyUsed (title)" in human
    elsewhere = "alertname: CheckoutDown\nrunbook_url: https://wiki.example.dev/ops/checkout-down"
    said = " ".join(indexed_cli("alert", elsewhere, "--no-rerank", "-k", "1").split())  # lines wrap
    assert "runbook_url https://wiki.example.dev/ops/checkout-down names no indexed document" in said


@pytest.mark.model
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alert", "{}"], "alert: found no alert name, runbook_url, summary or description"),
        (["alert"], "Pass the alert as an argument or with --file PATH"),
        (["alert", "--file", "/nonexistent/alert.json"], "/nonexistent/alert.json"),
    ],
)
def test_devrag_alert_refuses_bad_input_in_one_line(indexed_cli, args, message):
    out = indexed_cli(*args, code=1 if args[1:2] == ["{}"] else 2)
    assert message in out and "Traceback" not in out


@pytest.mark.anyio
async def test_list_sources_counts_the_alert_names_that_route_to_each_repository(client):
    answer = await call(client, "list_sources")
    (ops,) = answer["repos"]
    assert ops["alert_catalogue"] == {"rule": 1, "title": 3}
    assert "  alert catalogue (names that route here): rule 1, title 3" in answer["_text"]
