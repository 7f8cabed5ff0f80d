"""Which known services a query names: the `service` values the indexed documents carry.

Generated alerts name the component that fired ("the kube service (main stage) has a saturation
exceeding SLO") rather than a symptom a page describes, and the page that answers them is that
service's. The names come from the index (front matter `service`, or the folder a path convention
gives, see `doc_meta`), so every corpus brings its own.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_SEPARATORS = re.compile(r"[-_\s]+")


class ServiceNames:
    """The services documents carry, and a matcher for them in free text."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names = sorted(set(names), key=len, reverse=True)  # `redis-cache` before `redis`
        # `google-cloud-storage` is named as "Google Cloud Storage" too: separators match each other.
        alternatives = ["[-_\\s]+".join(map(re.escape, _SEPARATORS.split(n))) for n in self.names]
        self._pattern = (
            re.compile(r"(?<![\w-])(?:" + "|".join(f"({a})" for a in alternatives) + r")(?![\w-])", re.I)
            if alternatives
            else None
        )

    def named_in(self, text: str) -> list[str]:
        """The services `text` calls services, in order of first mention: `the kube service`,
        `service="kube"`, `service: kube` (any case; `-`, `_` and spaces alike).

        A bare word is not enough: runbook folders are named for components (`node`, `prometheus`,
        `alertmanager` in the prometheus-operator runbooks), and a query that merely mentions a
        node is seldom about the `node` folder. Counting every whole-word mention gained more on the
        GitLab set (hybrid nDCG@10 +0.18 on a third of it, against +0.14) but cost the
        prometheus-operator set 0.041; called a service, 451 of 457 GitLab mentions name the
        service whose runbook answers.
        """
        if self._pattern is None:
            return []
        found = (
            self.names[m.lastindex - 1]
            for m in self._pattern.finditer(text)
            if m.lastindex and _called_a_service(text, m.start(), m.end())
        )
        return list(dict.fromkeys(found))


_BEFORE = re.compile(r"(?:\bservices?|\bsvc|\bservice_name)\s*[:=]?\s*[\"'`]?\s*$", re.I)
_AFTER = re.compile(r"^[\"'`]?\s+(?:services?|svc)\b", re.I)


def _called_a_service(text: str, start: int, end: int) -> bool:
    """Whether the mention at text[start:end] is called a service: `the kube service`, `service=kube`."""
    return bool(_BEFORE.search(text[max(0, start - 24) : start]) or _AFTER.match(text[end : end + 16]))
