"""Rule files: which alerts a Prometheus or Alertmanager rule file defines, and the runbook each names."""

from __future__ import annotations

import pytest

from devrag.ingest.alert_rules import alert_rules
from devrag.retrieval.schema import AlertRule

RULE_FILE = """groups:
- name: kubernetes-apps
  rules:
  - alert: KubePodCrashLooping
    expr: max_over_time(kube_pod_container_status_waiting_reason{reason="CrashLoopBackOff"}[5m]) >= 1
    for: 15m
    labels: {severity: warning}
    annotations:
      summary: Pod is crash looping.
      runbook_url: https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping
  - record: namespace:container_cpu_usage:sum
    expr: sum(rate(container_cpu_usage_seconds_total[5m])) by (namespace)
  - alert: KubeJobFailed
    expr: kube_job_failed > 0
"""
CRD = """apiVersion: monitoring.coreos.com/v1
kind: PrometheusRule
metadata: {name: etcd}
spec:
  groups:
  - name: etcd
    rules:
    - alert: etcdNoLeader
      annotations:
        runbook_url: https://github.com/openshift/runbooks/blob/master/alerts/etcd/etcdNoLeader.md
---
apiVersion: v1
kind: ConfigMap
data: {alert: "not a rule"}
"""
GITLAB = """groups:
- name: sidekiq
  rules:
  - alert: SidekiqQueueTooLarge
    annotations:
      title: Large amount of Sidekiq Queued jobs
      runbook: docs/sidekiq/large-sidekiq-queue.md
"""


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        (
            "rules/kube.yaml",
            RULE_FILE,
            [
                AlertRule(
                    alert="KubePodCrashLooping",
                    runbook_url="https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping",
                ),
                AlertRule(alert="KubeJobFailed"),
            ],
        ),
        (
            "manifests/etcd-prometheusRule.yml",
            CRD,
            [
                AlertRule(
                    alert="etcdNoLeader",
                    runbook_url="https://github.com/openshift/runbooks/blob/master/alerts/etcd/etcdNoLeader.md",
                )
            ],
        ),
        (
            "rules/sidekiq.yml",
            GITLAB,
            [AlertRule(alert="SidekiqQueueTooLarge", runbook_url="docs/sidekiq/large-sidekiq-queue.md")],
        ),
        ("deploy/values.yaml", "replicas: 3\nimage: nginx\n", []),  # YAML, but no rules
        ("notes/alerts.md", RULE_FILE, []),  # only YAML files are rule files
        ("config.yaml", "alerting:\n  alertmanagers: []\nalert: yes\n", []),  # `alert:` outside rules
    ],
)
def test_the_alerting_rules_of_a_file_are_read_with_their_runbook(path, text, expected):
    rules, warnings = alert_rules(path, text)
    assert rules == expected
    assert warnings == []


def test_a_rule_file_that_is_not_valid_yaml_is_named_in_a_warning_and_yields_no_rules():
    rules, warnings = alert_rules("rules/broken.yml", "groups:\n- rules:\n  - alert: [Unclosed\n")
    assert rules == []
    assert len(warnings) == 1 and warnings[0].startswith("alert rules not read: not valid YAML")


def test_aliases_are_refused_in_rule_files_as_in_front_matter():
    bomb = "a: &a [x, x]\nb: &b [*a, *a]\ngroups:\n- rules:\n  - alert: X\n    labels: *b\n"
    rules, warnings = alert_rules("rules/bomb.yml", bomb)
    assert (rules, warnings) == ([], ["alert rules not read: YAML aliases are not allowed"])


def test_a_helm_template_is_not_mistaken_for_a_rule_file():
    template = "groups:\n{{- if .Values.rules }}\n- rules:\n  - alert: X\n{{- end }}\n"
    rules, _warnings = alert_rules("templates/rules.yaml", template)
    assert rules == []
