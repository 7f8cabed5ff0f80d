"""Alerts as agents paste them: Alertmanager webhooks, Prometheus API answers, rules and plain text."""

from __future__ import annotations

import json

import pytest

from devrag.retrieval.alert_input import AlertInput, parse_alerts, query_of
from devrag.retrieval.search_input import InputError

URL = "https://runbooks.prometheus-operator.dev/runbooks/kubernetes/kubepodcrashlooping"
WEBHOOK = {
    "version": "4",
    "status": "firing",
    "receiver": "oncall",
    "groupLabels": {"alertname": "KubePodCrashLooping"},
    "commonLabels": {"alertname": "KubePodCrashLooping", "severity": "warning", "namespace": "payments"},
    "commonAnnotations": {"runbook_url": URL},
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": "KubePodCrashLooping", "pod": "checkout-api-7d9f8b6c5-x2kq4"},
            "annotations": {
                "summary": "Pod is crash looping.",
                "description": "Pod payments/checkout-api-7d9f8b6c5-x2kq4 is in waiting state "
                "(reason: CrashLoopBackOff).",
            },
            "startsAt": "2026-11-30T10:00:00Z",
        },
        {
            "status": "firing",
            "labels": {"alertname": "KubePodCrashLooping", "pod": "checkout-api-7d9f8b6c5-q8w2z"},
            "annotations": {
                "summary": "Pod is crash looping.",
                "description": "Pod payments/checkout-api-7d9f8b6c5-q8w2z is in waiting state "
                "(reason: CrashLoopBackOff).",
            },
        },
    ],
}
PROMETHEUS = {
    "status": "success",
    "data": {
        "alerts": [
            {
                "labels": {"alertname": "NodeFilesystemSpaceFillingUp", "device": "/dev/sda1"},
                "annotations": {
                    "summary": "Filesystem is predicted to run out of space within the next 24 hours."
                },
                "state": "firing",
                "value": "1e+00",
            }
        ]
    },
}


def test_an_alertmanager_webhook_gives_each_alert_with_the_common_annotations():
    first, second = parse_alerts(json.dumps(WEBHOOK))
    assert first.name == second.name == "KubePodCrashLooping"
    assert first.runbook_url == URL and first.labels["namespace"] == "payments"
    assert first.query == (
        "KubePodCrashLooping Pod is crash looping. Pod payments/checkout-api-7d9f8b6c5-x2kq4 is in waiting "
        "state (reason: CrashLoopBackOff)."
    )
    assert query_of([first, second]).startswith("KubePodCrashLooping Pod is crash looping. Pod payments/")


@pytest.mark.parametrize(
    ("text", "name", "runbook_url", "query"),
    [
        (
            json.dumps(PROMETHEUS),
            "NodeFilesystemSpaceFillingUp",
            None,
            "NodeFilesystemSpaceFillingUp Filesystem is predicted to run out of space within the next "
            "24 hours.",
        ),
        (  # one alert object
            json.dumps({"labels": {"alertname": "TargetDown"}, "annotations": {"description": "50% down."}}),
            "TargetDown",
            None,
            "TargetDown 50% down.",
        ),
        (  # a rule as written in a rule file (YAML, read as `key: value` lines)
            f"alert: KubePodCrashLooping\nexpr: x > 0\nannotations:\n  summary: Pod is crash looping.\n"
            f"  runbook_url: {URL}\n",
            "KubePodCrashLooping",
            URL,
            "KubePodCrashLooping Pod is crash looping.",
        ),
        (  # a chat notification: key: value lines, with noise
            f"[FIRING:1] KubePodCrashLooping (payments)\n*Alert:* Pod is crash looping - warning\n"
            f"alertname: KubePodCrashLooping\nsummary: Pod is crash looping.\nrunbook_url: {URL}\n",
            "KubePodCrashLooping",
            URL,
            "KubePodCrashLooping Pod is crash looping.",
        ),
        (  # just the name: search (and the catalogue) get it as the query
            "KubePodCrashLooping",
            None,
            None,
            "KubePodCrashLooping",
        ),
        (  # a sentence, with a runbook link in it
            f"Checkout pods keep restarting, see {URL} for the runbook",
            None,
            URL,
            f"Checkout pods keep restarting, see {URL} for the runbook",
        ),
    ],
)
def test_an_alert_is_read_from_json_yaml_or_text(text, name, runbook_url, query):
    (alert,) = parse_alerts(text)
    assert (alert.name, alert.runbook_url, alert.query) == (name, runbook_url, query)


@pytest.mark.parametrize("text", ["", "   \n", "{}", "[]", '{"status": "firing", "alerts": []}'])
def test_a_paste_without_any_alert_is_refused_in_words(text):
    with pytest.raises(InputError, match="found no alert name, runbook_url, summary or description"):
        parse_alerts(text)


def test_yaml_aliases_in_a_paste_are_text_not_expanded():
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]\n"
        for i in range(9)
    )
    (alert,) = parse_alerts(bomb + "alertname: DiskFull\n")
    assert alert.name == "DiskFull" and len(alert.query) <= len(bomb) + len(" DiskFull")


def test_only_the_first_alerts_of_a_large_webhook_are_read_and_repeats_fold():
    alerts = [
        {"labels": {"alertname": f"Alert{n % 30}"}, "annotations": {"summary": "s"}} for n in range(500)
    ]
    parsed = parse_alerts(json.dumps({"alerts": alerts}))
    assert [a.name for a in parsed] == [f"Alert{n}" for n in range(10)]
    assert all(isinstance(a, AlertInput) for a in parsed)
