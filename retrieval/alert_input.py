"""An alert as an agent has it (an Alertmanager notification, a Prometheus alert, or text), read.

Agents get alerts pasted from many places: Alertmanager's webhook body (`alerts: [{labels,
annotations}]`, with `commonLabels`), Prometheus' `/api/v1/alerts` answer (`data.alerts`), one
alert object, a rule (`alert:` and `annotations:`), or plain `key: value` text from a chat
notification. All of them carry the same three things routing needs: the alert's name, the
`runbook_url` its rule set, and a summary and description to search with.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, Field

from devrag.retrieval.search_input import InputError

# Alerts read from one paste; a webhook groups many alerts of the same rule, and their names repeat.
MAX_ALERTS = 10
_NAME_KEYS = ("alertname", "alert", "alert_name")
_URL_KEYS = ("runbook_url", "runbook")
# The annotations a search reads, in the order written: what the alert is, then the detail.
_TEXT_KEYS = ("summary", "title", "message", "description")
_LINE = re.compile(r"^\W*([A-Za-z_][\w .-]{0,40}?)\W*\s*[:=]\s*(.+?)\s*$")
_URL = re.compile(r"https?://[^\s<>\"')\]]+")


class AlertInput(BaseModel):
    """One alert: its name, labels and annotations, as far as the paste gave them."""

    name: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    @property
    def runbook_url(self) -> str | None:
        return next((self.annotations[k] for k in _URL_KEYS if self.annotations.get(k)), None)

    @property
    def query(self) -> str:
        """What search reads: the name first (routing and the lexical leg find it), then the text."""
        texts = [self.annotations[k] for k in _TEXT_KEYS if self.annotations.get(k)]
        return " ".join(dict.fromkeys(t for t in [self.name or "", *texts] if t))


def parse_alerts(text: str) -> list[AlertInput]:
    """The alerts in a pasted notification, JSON or YAML or `key: value` text, at most MAX_ALERTS.

    Raises:
        InputError: the paste holds no alert name, runbook URL, summary or description.
    """
    value = _json(text)
    alerts = (
        [a for a in _alerts(value) if a.name or a.annotations] if value is not None else [_from_text(text)]
    )
    distinct = list({(a.name, a.runbook_url, a.query): a for a in alerts}.values())[:MAX_ALERTS]
    if not any(a.name or a.runbook_url or a.query for a in distinct):
        raise InputError(
            "alert: found no alert name, runbook_url, summary or description in it. Pass the alert as "
            "Alertmanager or Prometheus JSON, or as text lines such as 'alertname: X', 'summary: ...'."
        )
    return distinct


def query_of(alerts: list[AlertInput]) -> str:
    """The search query for parsed alerts: each one's name and text once (else its runbook URL)."""
    return " ".join(dict.fromkeys(a.query or a.runbook_url or "" for a in alerts))


def _json(text: str) -> Any:
    """The paste as a JSON object or array; None for anything else, read as text.

    Not YAML: a paste is untrusted, and a YAML alias bomb of a few hundred bytes expands to
    gigabytes; the `key: value` lines of a rule or a notification read well as text.
    """
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict | list) else None


def _alerts(value: Any, depth: int = 0) -> Iterator[AlertInput]:
    """Every alert object in a parsed paste, inheriting a webhook's common labels and annotations.

    It looks no deeper than the shapes above nest (a list of webhooks at most), however deep the JSON.
    """
    if depth > 3:
        return
    if isinstance(value, list):
        for item in value:
            yield from _alerts(item, depth + 1)
        return
    if not isinstance(value, dict):
        return
    if isinstance(value.get("data"), dict):  # Prometheus API: {"status": ..., "data": {"alerts": [...]}}
        yield from _alerts(value["data"], depth + 1)
        return
    inner = value.get("alerts")
    if isinstance(inner, list):  # Alertmanager webhook or a list wrapper
        common = AlertInput(
            labels=_strings(value.get("commonLabels")), annotations=_strings(value.get("commonAnnotations"))
        )
        for item in inner:
            for alert in _alerts(item, depth + 1):
                yield _merged(common, alert)
        return
    labels, annotations = _strings(value.get("labels")), _strings(value.get("annotations"))
    top = _strings(value)  # a flat object, or a rule: `alert: X`, `summary: ...`
    name = next((n for n in (labels.get(k) or top.get(k) for k in _NAME_KEYS) if n), None)
    for key in (*_TEXT_KEYS, *_URL_KEYS):
        if key not in annotations and top.get(key):
            annotations[key] = top[key]
    yield AlertInput(name=name, labels=labels, annotations=annotations)


def _merged(common: AlertInput, alert: AlertInput) -> AlertInput:
    return AlertInput(
        name=alert.name or common.labels.get("alertname"),
        labels={**common.labels, **alert.labels},
        annotations={**common.annotations, **alert.annotations},
    )


def _strings(value: Any) -> dict[str, str]:
    """The scalar entries of a mapping, as text."""
    if not isinstance(value, dict):
        return {}
    return {
        str(k).strip().lower(): str(v).strip() for k, v in value.items() if isinstance(v, str | int | float)
    }


def _from_text(text: str) -> AlertInput:
    """An alert from `key: value` lines (a chat notification, a copied Alertmanager page).

    When no line names a summary or description, the other lines are the description, so a bare
    sentence still searches.
    """
    fields: dict[str, str] = {}
    rest: list[str] = []
    for line in text.splitlines():
        match = _LINE.match(line)
        key = match.group(1).strip().lower().replace(" ", "_") if match else ""
        if match and key in (*_NAME_KEYS, *_TEXT_KEYS, *_URL_KEYS):
            fields.setdefault(key, match.group(2).strip())
        elif line.strip():
            rest.append(line.strip())
    if "runbook_url" not in fields and (url := _URL.search(text)):
        fields["runbook_url"] = url.group(0)
    if rest and not any(k in fields for k in _TEXT_KEYS):
        fields["description"] = " ".join(rest)
    name = next((fields.pop(k) for k in _NAME_KEYS if k in fields), None)
    return AlertInput(name=name, annotations=fields)
