"""The alert catalogue: alert names from front matter, titles and rule files, runbook URLs to paths."""

from __future__ import annotations

from typing import Any

import pytest

from devrag.retrieval.alert_catalog import AlertCatalog, AlertMatch, RecordDocuments
from devrag.retrieval.doc_fields import document_fields

PO = "content/runbooks/alertmanager/AlertmanagerFailedReload.md"


def chunk(path: str, title: str, doc_type: str = "runbook", **fields: Any) -> dict[str, Any]:
    return {"title": title, "headings": [title], "doc_type": doc_type, "path": path, **fields}


def catalog(*docs: tuple[str, str, dict[str, Any]]) -> AlertCatalog:
    """A catalogue over one chunk per (repo, path, payload), with the fields ingest adds to it."""
    records = []
    for n, (repo, path, payload) in enumerate(docs):
        first = {"id": f"c{n}", "text": "## Steps", "repo": repo, **payload}
        rules = [r["alert"] for r in payload.get("alert_rules", [])]
        (fields,) = document_fields(path, [first], payload.get("alerts", []), rules)
        records.append({**first, **fields.model_dump()})
    return AlertCatalog(RecordDocuments(records))


CORPUS = catalog(
    ("po", PO, chunk(PO, "AlertmanagerFailedReload")),
    (
        "po",
        "content/runbooks/etcd/etcdNoLeader.md",
        chunk("content/runbooks/etcd/etcdNoLeader.md", "etcdNoLeader"),
    ),
    ("gl", "docs/sidekiq/README.md", chunk("docs/sidekiq/README.md", "Sidekiq", "guide")),
    (
        "gl",
        "docs/patroni/postgresql-disk-space.md",
        chunk("docs/patroni/postgresql-disk-space.md", "PostgreSQL", "guide"),
    ),
    ("gl", "docs/kube/k8s-operations.md", chunk("docs/kube/k8s-operations.md", "GitLab", "guide")),
    ("gl", "certificates/zendesk.md", chunk("certificates/zendesk.md", "ZenDesk", "other")),
    (
        "os",
        "alerts/cno/NorthboundStaleAlert.md",
        chunk("alerts/cno/NorthboundStaleAlert.md", "NorthboundStale"),
    ),
    ("os", "alerts/etcd/etcdNoLeader.md", chunk("alerts/etcd/etcdNoLeader.md", "etcd has no leader")),
    (
        "ops",
        "runbooks/payments.md",
        chunk("runbooks/payments.md", "Payments down", alerts=["PaymentsDown", "payments_5xx"]),
    ),
    ("ops", "docs/README.md", chunk("docs/README.md", "Docs", "guide")),
    ("other", "docs/README.md", chunk("docs/README.md", "Docs", "guide")),
)


@pytest.mark.parametrize(
    ("alert", "expected"),
    [
        ("AlertmanagerFailedReload", [("po", PO)]),  # title = file name
        ("etcdNoLeader", [("po", "content/runbooks/etcd/etcdNoLeader.md")]),  # lower-case first hump
        ("NorthboundStale", [("os", "alerts/cno/NorthboundStaleAlert.md")]),  # a runbook, another file name
        ("PaymentsDown", [("ops", "runbooks/payments.md")]),  # front matter
        ("payments_5xx", [("ops", "runbooks/payments.md")]),
        ("PostgreSQL", []),  # a product name titling a guide is not an alert
        ("GitLab", []),
        ("ZenDesk", []),  # names its file only if case is ignored, and alert names keep their case
        ("Sidekiq", []),  # no camel hump
        ("alertmanagerfailedreload", []),  # names compare exactly, as Prometheus compares them
    ],
)
def test_the_catalogue_knows_an_alert_by_front_matter_or_by_a_title_that_is_its_name(alert, expected):
    assert [doc for doc, _match in CORPUS.documents(alert)] == expected


def test_each_entry_says_where_the_catalogue_learned_it():
    ((_, by_title),) = CORPUS.documents("AlertmanagerFailedReload")
    ((_, by_front_matter),) = CORPUS.documents("PaymentsDown")
    assert by_title == AlertMatch(alert="AlertmanagerFailedReload", source="title")
    assert by_front_matter == AlertMatch(alert="PaymentsDown", source="front_matter")


@pytest.mark.parametrize(
    ("url", "repo", "expected"),
    [
        (
            "https://runbooks.prometheus-operator.dev/runbooks/alertmanager/alertmanagerfailedreload",
            None,
            [("po", PO)],
        ),
        (
            "https://runbooks.prometheus-operator.dev/runbooks/alertmanager/alertmanagerfailedreload/",
            None,
            [("po", PO)],
        ),
        (
            "https://github.com/openshift/runbooks/blob/master/alerts/cno/NorthboundStaleAlert.md",
            None,
            [("os", "alerts/cno/NorthboundStaleAlert.md")],
        ),
        (
            "https://gitlab.com/gitlab-com/runbooks/-/blob/main/docs/sidekiq/README.md#queues",
            None,
            [("gl", "docs/sidekiq/README.md")],
        ),
        (
            "https://gitlab.com/gitlab-com/runbooks/-/tree/main/docs/sidekiq",
            None,
            [("gl", "docs/sidekiq/README.md")],
        ),
        (
            "docs/sidekiq/README.md",
            "gl",
            [("gl", "docs/sidekiq/README.md")],
        ),  # relative: the rule file's repo
        ("https://example.com/wiki/etcdnoleader", None, []),  # two repositories have that page: no guess
        (
            "https://github.com/openshift/runbooks/blob/master/alerts/etcd/etcdNoLeader.md",
            None,
            [("os", "alerts/etcd/etcdNoLeader.md")],
        ),
        ("docs/README.md", "other", [("other", "docs/README.md")]),
        ("https://example.com/docs/", None, []),  # ops and other both have docs/README.md
        ("https://example.com/nothing/here", None, []),
        ("", None, []),
    ],
)
def test_a_runbook_url_maps_to_the_indexed_document_whose_path_ends_like_it(url, repo, expected):
    assert CORPUS.runbook_documents(url, repo) == expected


def test_a_rule_file_maps_its_alert_to_the_document_its_runbook_url_names_in_any_repository():
    rules = [
        {
            "alert": "AlertmanagerFailedReload",
            "runbook_url": "https://runbooks.example.dev/runbooks/alertmanager/alertmanagerfailedreload",
        },
        {"alert": "SidekiqQueueTooLarge", "runbook_url": "docs/sidekiq/README.md"},
        {"alert": "NoRunbook", "runbook_url": None},
        {"alert": "Elsewhere", "runbook_url": "https://example.com/not/indexed"},
    ]
    with_rules = catalog(
        ("po", PO, chunk(PO, "Alertmanager reload failed")),
        ("gl", "docs/sidekiq/README.md", chunk("docs/sidekiq/README.md", "Sidekiq", "guide")),
        ("gl", "rules/all.yml", chunk("rules/all.yml", "rules/all.yml", "code", alert_rules=rules)),
    )
    ((doc, match),) = with_rules.documents("AlertmanagerFailedReload")
    assert doc == ("po", PO) and match.source == "rule" and match.rule == "gl:rules/all.yml"
    assert [d for d, _ in with_rules.documents("SidekiqQueueTooLarge")] == [("gl", "docs/sidekiq/README.md")]
    assert with_rules.documents("NoRunbook") == [] and with_rules.documents("Elsewhere") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("AlertmanagerFailedReload fired in monitoring", ["AlertmanagerFailedReload"]),
        (
            "[FIRING:1] PaymentsDown (checkout) then AlertmanagerFailedReload",
            ["PaymentsDown", "AlertmanagerFailedReload"],
        ),
        ("alertname=etcdNoLeader, namespace=etcd", ["etcdNoLeader"]),
        ("AlertmanagerFailedReloadTotal is a metric, not the alert", []),  # whole words only
        ("alertmanagerfailedreload", []),
        ("payments_5xx_ratio high", []),
        ("no alert here", []),
    ],
)
def test_alert_names_are_found_in_a_query_as_whole_words_in_order(text, expected):
    assert CORPUS.names_in(text) == expected
