"""What stands where a secret was (`[REDACTED:<kind>]`), and how YAML reads text that holds it.

Redaction runs before any parsing, so front matter and rule files are parsed with markers in
them; a marker opening a value (`token: [REDACTED:github-token] (rotate monthly)`) reads as a
YAML list, or breaks the block, and one secret would cost a runbook its title, service and alerts.
"""

from __future__ import annotations

import re
from typing import Any

_MARKER = re.compile(r"\[REDACTED:([a-z0-9-]+)\]")
_STAND_IN = "\ue000"  # a private-use character: YAML reads it as part of a plain scalar
_HIDDEN = re.compile(f"{_STAND_IN}([a-z0-9-]+){_STAND_IN}")


def marker(kind: str) -> str:
    """What stands in the text where a secret of this kind was."""
    return f"[REDACTED:{kind}]"


def hide_markers(text: str) -> str:
    """The text with each marker spelled so that YAML reads it as plain text."""
    return _MARKER.sub(lambda m: f"{_STAND_IN}{m[1]}{_STAND_IN}", text)


def restore_markers(value: Any) -> Any:
    """A parsed YAML value with every hidden marker spelled as a marker again."""
    if isinstance(value, str):
        return _HIDDEN.sub(lambda m: marker(m[1]), value)
    if isinstance(value, list):
        return [restore_markers(v) for v in value]
    if isinstance(value, dict):
        return {restore_markers(k): restore_markers(v) for k, v in value.items()}
    return value
