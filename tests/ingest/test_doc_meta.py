"""Front matter and path conventions become one normalised DocMeta per document."""

from __future__ import annotations

import pytest

from devrag.ingest.doc_meta import document_meta, service_from_path
from devrag.ingest.documents import parse_file
from devrag.ingest.front_matter import load_front_matter


def meta_of(front_matter: str, path: str = "notes/page.md"):
    return document_meta(path, load_front_matter(front_matter))


def test_known_fields_are_typed_trimmed_and_keywords_lowercased():
    meta, warnings = meta_of(
        "service: ' Checkout-API '\nowner: Team-Checkout\nseverity: P1\nenvironment: Prod\n"
        "alerts: [CheckoutApiHighErrorRate, ' CheckoutApiHighLatencyP99 ']\n"
        "tags: [Payments, latency, payments]\nlast_reviewed: 2026-02-27\n"
    )
    assert warnings == []
    assert (meta.service, meta.service_source, meta.team) == ("checkout-api", "front_matter", "team-checkout")
    assert (meta.severity, meta.environment, meta.last_reviewed) == ("p1", "prod", "2026-02-27")
    assert meta.alerts == ["CheckoutApiHighErrorRate", "CheckoutApiHighLatencyP99"], "alert names keep case"
    assert meta.tags == ["payments", "latency"], "tags lowercased, repeats dropped"


@pytest.mark.parametrize(
    ("front_matter", "field", "value"),
    [
        ("team: sre\nowner: alice", "team", "sre"),
        ("owner: alice\nteam: sre", "team", "sre"),
        ("owner: alice", "team", "alice"),
        ("tags: kafka, lag ,  consumer", "tags", ["kafka", "lag", "consumer"]),
        ("tag: kafka", "tags", ["kafka"]),
        ("alert: KafkaConsumerLag", "alerts", ["KafkaConsumerLag"]),
        ("env: staging", "environment", "staging"),
        ("severity: 2", "severity", "2"),
        ("last-reviewed: '2025-12-01'", "last_reviewed", "2025-12-01"),
        ("last_reviewed: 2025-12-01T10:00:00Z", "last_reviewed", "2025-12-01"),
        ("Service: Ledger", "service", "ledger"),
    ],
)
def test_common_spellings_fill_the_same_field(front_matter, field, value):
    meta, _ = meta_of(front_matter)
    assert getattr(meta, field) == value


def test_other_scalar_and_list_fields_are_kept_under_meta_and_prose_is_not():
    meta, _ = meta_of(
        "title: T\ntype: runbook\ntier: 1\npaged: true\nslo: [availability, latency]\n"
        f"description: {'long prose ' * 40}\nlinks: {{grafana: x}}\n"
    )
    assert meta.meta == {"tier": "1", "paged": "true", "slo": ["availability", "latency"]}


def test_values_that_are_not_what_a_field_holds_are_ignored_with_a_warning():
    meta, warnings = meta_of("service: [a, b]\nlast_reviewed: last week\n", path="runbooks/kafka/lag.md")
    assert meta.last_reviewed is None
    assert (meta.service, meta.service_source) == ("kafka", "path"), "falls back to the path"
    assert len(warnings) == 2 and "last_reviewed" in warnings[1]


@pytest.mark.parametrize(
    ("path", "service"),
    [
        ("runbooks/payments/refunds.md", "payments"),
        ("content/runbooks/kubernetes/KubePodCrashLooping.md", "kubernetes"),
        ("ops/runbooks/Kafka/lag/consumer.md", "kafka"),
        ("alerts/openshift-virtualization-operator/VirtLauncherDown.md", "openshift-virtualization-operator"),
        ("docs/patroni/failover.md", "patroni"),
        ("docs/runbooks/redis/memory.md", "redis"),
        ("runbooks/disk-full.md", None),
        ("docs/index.md", None),
        ("services/payments/docs/setup/x.md", None),
        ("guides/deploy.md", None),
    ],
)
def test_services_are_inferred_from_documented_path_conventions(path, service):
    assert service_from_path(path) == service


def test_every_parse_carries_its_documents_metadata_and_code_gets_the_path_service():
    def count(text: str) -> int:
        return len(text.split())

    md = parse_file("runbooks/payments/x.md", "---\nteam: pay\n---\n# X\n\ntext\n", 120, count)
    assert (md.meta.service, md.meta.service_source, md.meta.team) == ("payments", "path", "pay")
    sh = parse_file("runbooks/payments/fix.sh", "echo fix\n", 120, count)
    assert (sh.meta.service, sh.meta.service_source) == ("payments", "path")


def _count(text: str) -> int:
    return len(text.split())


def test_a_secret_in_front_matter_is_redacted_and_the_rest_of_the_front_matter_survives():
    front = (
        "---\ntitle: AKIAZ3MXQK7TRV2WXYZB\nservice: deployer\nteam: release-eng\n"
        "alerts: [DeployPipelineStuck]\n"
        "deploy_token: ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 (rotate monthly)\n---\n"
    )
    parsed = parse_file(
        "runbooks/b.md", front + "# Deploy\n\n## Meaning\nThe pipeline is stuck.\n", 120, _count
    )
    assert (parsed.meta.service, parsed.meta.team, parsed.meta.alerts) == (
        "deployer",
        "release-eng",
        ["DeployPipelineStuck"],
    )
    assert parsed.meta.meta["deploy_token"] == "[REDACTED:github-token] (rotate monthly)"
    assert parsed.title == "[REDACTED:aws-access-key]"
    assert not parsed.warnings and parsed.redacted == {"github-token": 1, "aws-access-key": 1}


def test_front_matter_that_is_not_valid_yaml_is_ignored_with_a_warning_naming_the_line():
    text = "---\nservice: checkout\nalerts: [CheckoutDown\n---\n# CheckoutDown\n\n## Meaning\nx\n"
    parsed = parse_file("runbooks/c.md", text, 120, _count)
    assert parsed.meta.service is None and parsed.drafts
    (warning,) = parsed.warnings
    assert warning.startswith("front matter ignored: not valid YAML (") and "line 3" in warning
