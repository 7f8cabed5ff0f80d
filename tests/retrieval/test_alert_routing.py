"""Alert routing on a real engine: catalogued alert names put their runbook first, with the evidence."""

from __future__ import annotations

import json

import pytest

from devrag.ingest.pipeline import ingest
from devrag.ingest.reconcile import reconcile
from devrag.retrieval.alert_input import parse_alerts
from devrag.retrieval.search import Filters, HybridIndex
from devrag.retrieval.search_config import SearchConfig

SPACE = "runbooks/node/NodeFilesystemSpaceFillingUp.md"
FILES = "runbooks/node/NodeFilesystemFilesFillingUp.md"
ALMOST = "runbooks/node/NodeFilesystemAlmostOutOfSpace.md"
PAYMENTS = "runbooks/payments.md"
RUNBOOKS = {
    SPACE: "# NodeFilesystemSpaceFillingUp\n\n## Meaning\n\nThe filesystem on a node disk is filling up with "
    "data and will run out of space.\n\n## Mitigation\n\nDelete old logs on the node disk.\n",
    FILES: "# NodeFilesystemFilesFillingUp\n\n## Meaning\n\nThe filesystem on a node runs out of inodes: "
    "too many small files.\n\n## Mitigation\n\nFind folders with many files.\n",
    ALMOST: "# NodeFilesystemAlmostOutOfSpace\n\n## Meaning\n\nLess than five percent of the filesystem "
    "space is left on a node.\n\n## Mitigation\n\nGrow the volume.\n",
    "runbooks/kube/KubePodCrashLooping.md": "# KubePodCrashLooping\n\n## Meaning\n\nA pod restarts again and "
    "again.\n\n## Mitigation\n\nRead the logs of the last run.\n",
    PAYMENTS: "---\nalerts: [PaymentsDown]\n---\n# Payments are down\n\n## Steps\n\nCheck the payments "
    "gateway and its queue.\n",
    "guides/disk.md": "# Disks on nodes\n\n## Filesystem\n\nA node disk filesystem filling up: space, files, "
    "inodes, the node disk filesystem again.\n",
}
RULES = """groups:
- name: node
  rules:
  - alert: DiskPressureCritical
    expr: node_filesystem_avail_bytes < 1e9
    annotations:
      summary: Disk pressure on a node.
      runbook_url: https://github.com/acme/runbooks/blob/main/{target}
"""
QUERY = "filesystem on a node disk filling up"


@pytest.fixture
def repos(index, git_repo, embedder):
    runbooks = git_repo("runbooks")
    runbooks.commit(RUNBOOKS)
    ingest(index, embedder, runbooks.path, "runbooks")
    monitoring = git_repo("monitoring")
    monitoring.commit(
        {"rules/node.yml": RULES.format(target=ALMOST), "README.md": "# Monitoring\n\nRules.\n"}
    )
    ingest(index, embedder, monitoring.path, "monitoring")
    return runbooks, monitoring


@pytest.fixture
def searcher(repos, index, embedder):
    s = HybridIndex(index, embedder, reranker=None)
    yield s
    s.close()


def paths(response) -> list[str]:
    return [r.path for r in response.results]


def test_an_exact_alert_name_puts_its_runbook_first_and_siblings_keep_their_order(searcher, index, embedder):
    unrouted = HybridIndex(index, embedder, None, SearchConfig(alert_routing=False))
    for mode in ("hybrid", "dense", "bm25"):
        plain = unrouted.search(f"NodeFilesystemFilesFillingUp {QUERY}", 6, mode)
        routed = searcher.search(f"NodeFilesystemFilesFillingUp {QUERY}", 6, mode)
        first = routed.results[0]
        assert first.path == FILES, mode
        assert (first.route, first.alert_match.alert, first.alert_match.source) == (
            "catalogue",
            "NodeFilesystemFilesFillingUp",
            "title",
        )
        assert paths(routed)[1:] == [p for p in paths(plain) if p != FILES][:5], mode
        assert all(r.route == "search" and r.alert_match is None for r in routed.results[1:])
    unrouted.close()


def test_a_word_that_is_no_catalogued_alert_routes_nothing(searcher):
    for query in (QUERY, f"NodeFilesystemFull {QUERY}", f"nodefilesystemfilesfillingup {QUERY}"):
        assert all(r.alert_match is None for r in searcher.search(query, 6, "hybrid").results)


def test_a_front_matter_alert_routes_even_when_the_words_match_nothing_else(searcher):
    first = searcher.search("PaymentsDown", 3, "hybrid").results[0]
    assert (first.path, first.alert_match.source) == (PAYMENTS, "front_matter")


def test_a_rule_file_in_another_repository_maps_its_alert_and_re_maps_when_it_changes(
    repos, searcher, index, embedder
):
    _runbooks, monitoring = repos
    first = searcher.search(f"DiskPressureCritical {QUERY}", 5, "hybrid").results[0]
    assert (first.repo, first.path, first.route) == ("runbooks", ALMOST, "catalogue")
    assert first.alert_match.source == "rule" and first.alert_match.rule == "monitoring:rules/node.yml"
    assert first.alert_match.runbook_url == f"https://github.com/acme/runbooks/blob/main/{ALMOST}"

    monitoring.commit({"rules/node.yml": RULES.format(target=SPACE)})
    ingest(index, embedder, monitoring.path, "monitoring")
    assert searcher.search(f"DiskPressureCritical {QUERY}", 5, "hybrid").results[0].path == SPACE

    monitoring.commit({"rules/node.yml": None})  # deleted, and left to the nightly reconcile
    (drift,) = reconcile(index, lambda: embedder, check_only=False, states=[index.repo_state("monitoring")])
    assert drift.orphaned == ["rules/node.yml"] and drift.repaired is not None
    after = searcher.search(f"DiskPressureCritical {QUERY}", 5, "hybrid").results
    assert all(r.alert_match is None for r in after)


def test_reconcile_repairs_a_rule_file_that_changed_without_an_ingest(repos, searcher, index, embedder):
    _runbooks, monitoring = repos
    monitoring.commit({"rules/node.yml": RULES.format(target=FILES)})
    (drift,) = reconcile(index, lambda: embedder, check_only=False, states=[index.repo_state("monitoring")])
    assert drift.drifted
    assert searcher.search(f"DiskPressureCritical {QUERY}", 5, "hybrid").results[0].path == FILES


def test_filters_still_apply_to_a_routed_document(searcher):
    outside = searcher.search(f"NodeFilesystemFilesFillingUp {QUERY}", 5, "hybrid", Filters(path="guides/*"))
    assert paths(outside) == ["guides/disk.md"]
    other_repo = searcher.search("NodeFilesystemFilesFillingUp", 5, "hybrid", Filters(repo="monitoring"))
    assert FILES not in paths(other_repo)


def test_a_pasted_alert_routes_by_runbook_url_then_catalogue_then_search(searcher):
    webhook = {
        "commonLabels": {"alertname": "PaymentsDown"},
        "alerts": [
            {
                "labels": {"alertname": "PaymentsDown"},
                "annotations": {
                    "summary": "Payments gateway errors.",
                    "runbook_url": f"https://github.com/acme/runbooks/blob/main/{SPACE}",
                },
            }
        ],
    }
    response = searcher.search("", 4, "hybrid", alerts=parse_alerts(json.dumps(webhook)))
    routes = [(r.path, r.route) for r in response.results]
    assert routes[:2] == [(SPACE, "runbook_url"), (PAYMENTS, "catalogue")]
    assert all(route == "search" for _path, route in routes[2:]) and len(routes) == 4
    assert response.results[0].alert_match.runbook_url.endswith(SPACE)
