"""Redaction benchmark: recall on planted fake credentials, false positives on real runbooks.

Run: `python -m devrag.eval.redaction_bench ../shared/data/runbooks-corpus/*`.

Recall: 100 fake credentials of 12 kinds planted in runbook context (`planted_secrets`); one
counts as caught when no piece of its value survives redaction. False positives: every value
redacted in the given folders of real runbooks, which hold no live credentials, listed line by
line for review (the example passwords and placeholders they hold show up here). Both read the
files exactly as ingest does (`redact` before chunking); line counts are checked unchanged.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from devrag.eval.planted_secrets import KINDS, Planted, planted_corpus
from devrag.ingest.documents import decode, is_supported
from devrag.ingest.redaction import redact


@dataclass(frozen=True)
class Flagged:
    """One line of a real runbook that redaction changed."""

    corpus: str
    path: str
    line: int
    kinds: tuple[str, ...]
    before: str
    after: str


def recall(seed: int = 13) -> tuple[Counter[str], Counter[str], list[Planted]]:
    """Planted and caught credentials per kind, and the ones missed."""
    files, planted = planted_corpus(seed)
    redacted = {path: _redacted(path, text) for path, text in files.items()}
    caught: Counter[str] = Counter()
    missed = []
    for item in planted:
        pieces = [p.strip() for p in item.value.split("\n") if p.strip()]
        if any(p in redacted[item.path] for p in pieces):
            missed.append(item)
        else:
            caught[item.kind] += 1
    return Counter(p.kind for p in planted), caught, missed


def _redacted(path: str, text: str) -> str:
    result = redact(path, text)
    if result.text.count("\n") != text.count("\n"):
        raise AssertionError(f"{path}: redaction changed the number of lines")
    return result.text


def false_positives(corpora: list[Path]) -> tuple[list[Flagged], int, float]:
    """Every line redaction changed in the corpora, the files read and the seconds redaction took."""
    flagged: list[Flagged] = []
    files = 0
    spent = 0.0
    for corpus in corpora:
        for file in sorted(p for p in corpus.rglob("*") if p.is_file() and ".git" not in p.parts):
            path = file.relative_to(corpus).as_posix()
            if not is_supported(path):
                continue
            text = decode(file.read_bytes()).replace("\r\n", "\n")
            started = time.perf_counter()
            result = redact(path, text)
            spent += time.perf_counter() - started
            files += 1
            pairs = zip(text.split("\n"), result.text.split("\n"), strict=True)
            for number, (before, after) in enumerate(pairs, 1):
                if before != after:
                    kinds = tuple(k for k in result.kinds if f"[REDACTED:{k}]" in after)
                    flagged.append(Flagged(corpus.name, path, number, kinds, before.strip(), after.strip()))
    return flagged, files, spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("corpora", nargs="*", type=Path, help="folders of real runbooks (false positives)")
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args(argv)
    console = Console()
    planted, caught, missed = recall(args.seed)
    table = Table(title=f"Recall on {sum(planted.values())} planted fake credentials (seed {args.seed})")
    for column in ("kind", "planted", "redacted", "recall"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for kind in KINDS:
        table.add_row(
            kind.name, str(planted[kind.name]), str(caught[kind.name]), _ratio(caught, planted, kind.name)
        )
    table.add_row("all", str(sum(planted.values())), str(sum(caught.values())), _ratio(caught, planted))
    console.print(table)
    for item in missed:
        console.print(f"missed {item.kind}: {item.path}:{item.line}", markup=False)
    if args.corpora:
        flagged, files, spent = false_positives(args.corpora)
        console.print(
            f"\nFalse positives: {len(flagged)} lines in {files} files of "
            f"{', '.join(c.name for c in args.corpora)} (redaction took {spent:.1f} s)",
            markup=False,
        )
        for kind, n in Counter(k for f in flagged for k in f.kinds).most_common():
            console.print(f"  {kind}: {n} lines", markup=False)
        for f in flagged:
            console.print(
                f"{f.corpus}/{f.path}:{f.line} {','.join(f.kinds)}\n  - {f.before}\n  + {f.after}",
                markup=False,
            )
    return 0


def _ratio(caught: Counter[str], planted: Counter[str], kind: str | None = None) -> str:
    if kind is None:
        return f"{sum(caught.values()) / max(sum(planted.values()), 1):.2f}"
    return f"{caught[kind] / max(planted[kind], 1):.2f}"


if __name__ == "__main__":
    sys.exit(main())
