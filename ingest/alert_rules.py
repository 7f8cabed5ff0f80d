"""Alerting rules read from Prometheus and Alertmanager rule files, so runbooks can be found by alert.

A rule file (`groups: - rules: - alert: X, annotations: {runbook_url: ...}`, alone or as the
`spec` of a PrometheusRule object) says which page answers each alert it defines. The rules are
stored on the file's chunks as written; the search side maps each `runbook_url` to an indexed
document when a query names the alert (`alert_catalog`), so a rule file or a runbook that changes
re-maps with its next ingest, in whichever repository either lives.
"""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import yaml

from devrag.ingest.front_matter import FrontMatterError, load_yaml_documents
from devrag.retrieval.schema import AlertRule

RULE_SUFFIXES = {".yml", ".yaml"}
# Annotations that name a runbook: Prometheus convention, and GitLab's relative `runbook` path.
_RUNBOOK_KEYS = ("runbook_url", "runbook")


def alert_rules(path: str, text: str) -> tuple[list[AlertRule], list[str]]:
    """The alerting rules a YAML file defines, and a warning when it looks like a rule file but is not read.

    Files that define no `alert:` are not parsed at all (most YAML in a repository is not rules).
    """
    if PurePosixPath(path).suffix.lower() not in RULE_SUFFIXES or "alert:" not in text:
        return [], []
    try:
        documents = load_yaml_documents(text)
    except FrontMatterError as exc:
        return [], [f"alert rules not read: {str(exc).removesuffix(' in front matter')}"]
    except yaml.YAMLError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return [], [f"alert rules not read: not valid YAML ({reason})"]
    found: dict[tuple[str, str | None], AlertRule] = {}
    for document in documents:
        for rule in _rules(document):
            found.setdefault((rule.alert, rule.runbook_url), rule)
    return list(found.values()), []


def _rules(document: Any) -> list[AlertRule]:
    """The alerting rules of one YAML document: a rule file, or a PrometheusRule's `spec`."""
    if not isinstance(document, dict):
        return []
    groups = document.get("groups")
    spec = document.get("spec")
    if groups is None and isinstance(spec, dict):
        groups = spec.get("groups")
    rules: list[AlertRule] = []
    for group in groups if isinstance(groups, list) else []:
        entries = group.get("rules") if isinstance(group, dict) else None
        for entry in entries if isinstance(entries, list) else []:
            rule = _rule(entry)
            if rule is not None:
                rules.append(rule)
    return rules


def _rule(entry: Any) -> AlertRule | None:
    if not isinstance(entry, dict) or not isinstance(entry.get("alert"), str) or not entry["alert"].strip():
        return None  # a recording rule, or not a rule
    annotations = entry.get("annotations")
    annotations = annotations if isinstance(annotations, dict) else {}
    url = next(
        (str(annotations[key]).strip() for key in _RUNBOOK_KEYS if isinstance(annotations.get(key), str)),
        None,
    )
    return AlertRule(alert=entry["alert"].strip(), runbook_url=url or None)
