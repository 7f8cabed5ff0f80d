"""Read YAML front matter without letting a few hundred bytes cost gigabytes.

`yaml.safe_load` expands aliases: each `*ref` is shared in the parsed object, but anything that
walks it (str(), a title, a doc type) walks every path, so nine nested levels of nine aliases make
a 295-byte front matter print as a 3.85 MB title (measured: 127 s and 7.7 GB to ingest one file).
Front matter holds a title, a type and a few tags; it has no use for aliases, so they are refused,
and so is nesting deep enough to exhaust PyYAML's recursive composer.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import Node

from devrag.ingest.redaction_marker import hide_markers, restore_markers

MAX_DEPTH = 32


class FrontMatterError(yaml.YAMLError):
    """Front matter that is valid YAML but refused, with the reason."""


class _FrontMatterLoader(yaml.SafeLoader):
    """A SafeLoader that refuses aliases and nesting deeper than MAX_DEPTH."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            raise FrontMatterError("YAML aliases are not allowed in front matter")
        if self._depth >= MAX_DEPTH:
            raise FrontMatterError(f"nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        try:
            return super().compose_node(parent, index)  # type: ignore[no-any-return]
        finally:
            self._depth -= 1


def load_front_matter(text: str) -> Any:
    """The YAML value of a front matter block, redaction markers read as text (`redaction_marker`).

    Raises:
        FrontMatterError: the front matter uses aliases or nests too deep.
        yaml.YAMLError: it is not valid YAML.
    """
    return restore_markers(yaml.load(hide_markers(text), Loader=_FrontMatterLoader))  # noqa: S506 - a SafeLoader subclass


def load_yaml_documents(text: str) -> list[Any]:
    """Every document of a YAML stream (`---`-separated), read under the same limits as front matter.

    Rule files have no more use for aliases than front matter has, and are as open to alias bombs.

    Raises:
        FrontMatterError: the stream uses aliases or nests too deep.
        yaml.YAMLError: it is not valid YAML.
    """
    documents = yaml.load_all(hide_markers(text), Loader=_FrontMatterLoader)  # noqa: S506 - a SafeLoader subclass
    return [restore_markers(document) for document in documents]
