"""Which commands a returned section holds, and what running each would do: read, change or destroy.

An agent that reads a runbook may run what it quotes. `kubectl get pods` beside `kubectl delete
pod` look alike to it; the result says which is which, so a client can ask before the second.
The classes, worst of every part of a pipeline or `&&` chain:

- `read-only`: only reads (`kubectl get`, `SELECT`, `terraform plan`, `git log`);
- `mutating`: changes state that the inverse command restores (`kubectl rollout restart`,
  `systemctl stop`, `UPDATE ... WHERE`, `DELETE ... WHERE`), and anything not recognised: an
  unknown command is never called read-only;
- `destructive`: deletes data or resources, or takes a host or process down for good (`kubectl
  delete`/`drain`, `DROP`, `TRUNCATE`, `DELETE`/`UPDATE` without WHERE, `terraform destroy`,
  `helm uninstall`, `rm`, `dd of=`, `mkfs`, `kill`, `git push --force`, `etcdctl del`, cloud
  `delete`/`terminate`).

Commands are found with the CommonMark parser the chunker uses: every line of a shell, SQL or
unlabelled code block (only the `$ ` prompt lines where a block shows some), and inline code that
starts with a known program or SQL verb (inline `CrashLoopBackOff` is a name, not a command).
Lines of an unlabelled block that do not start with a known program are read as output.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.token import Token
from pydantic import BaseModel

from devrag.retrieval.command_rules import (
    KNOWN_PROGRAMS,
    SQL_VERBS,
    Kind,
    classify_sql,
    classify_words,
    worst,
)

CommandClass = Kind
_MD = MarkdownIt("commonmark")
_SHELL_FENCES = {"sh", "bash", "shell", "zsh", "console", "shell-session", "shellsession", "terminal"}
_SQL_FENCES = {"sql", "psql", "mysql", "postgresql", "postgres", "pgsql", "plpgsql"}
_PROMPT = re.compile(r"^(?:\(\w[\w.-]*\)\s*)?(?:[\w.@:~/-]*[$#%>]|PS>)\s+")
_QUOTED = re.compile(r"'[^']*'|\"(?:\\.|[^\"\\])*\"")
_SPLIT = re.compile(r"\|\||&&|[|;]")
MAX_COMMAND_CHARS = 200


class Command(BaseModel):
    """One command quoted in a section, as written (prompt removed), and what running it does."""

    text: str
    kind: CommandClass


def section_commands(text: str) -> list[Command]:
    """Every command in a section's Markdown, in order, each once."""
    found: dict[str, CommandClass] = {}
    for line, sql in _candidates(_MD.parse(text)):
        found.setdefault(line[:MAX_COMMAND_CHARS], classify_sql(line) if sql else classify(line))
    return [Command(text=t, kind=k) for t, k in found.items()]


def classify(line: str) -> CommandClass:
    """The class of one shell line: the worst of its parts (pipes, `&&`, `;`), each with sudo, env
    prefixes and a `$ ` prompt removed; a part that is no program known here counts as mutating."""
    line = _PROMPT.sub("", line.strip(), count=1)
    first = line.split(maxsplit=1)[0] if line.split() else ""
    if first.upper() in SQL_VERBS:
        return classify_sql(line)
    parts = [p for p in _parts(line) if p.strip()]
    kinds = [classify_words(_words(part)) for part in parts]
    known = [k for k in kinds if k is not None]
    if len(known) < len(parts) or not known:
        known.append("mutating")  # a part of the chain is no program we know
    if re.search(r"(?<![<>&0-9])>{1,2}\s*(?!&|/dev/null)\S", _without_quoted(line)):
        known.append("mutating")  # output written to a file
    return worst(known)


def _candidates(tokens: list[Token]) -> list[tuple[str, bool]]:
    """(line, is SQL) of every command-like line: code blocks first-class, inline code by its first word."""
    out: list[tuple[str, bool]] = []
    for token in tokens:
        if token.type in ("fence", "code_block"):
            info = token.info.strip().lower()
            out += _block_lines(info.split(maxsplit=1)[0] if info else "", token.content)
        for child in token.children or []:
            if child.type == "code_inline" and _starts_known(child.content):
                out.append((child.content.strip(), False))
    return out


def _block_lines(lang: str, content: str) -> list[tuple[str, bool]]:
    if lang in _SQL_FENCES:
        return [(s.strip(), True) for s in content.split(";") if s.strip() and not s.strip().startswith("--")]
    if lang and lang not in _SHELL_FENCES:
        return []  # yaml, json, python, hcl...: configuration or code, not commands to run
    lines = content.replace("\\\n", " ").splitlines()
    prompted = [line for line in lines if _PROMPT.match(line.strip()) and not line.strip().startswith("# ")]
    if prompted:
        return [(line.strip(), False) for line in prompted]
    shell = lang in _SHELL_FENCES
    return [
        (line.strip(), False)
        for line in lines
        if line.strip() and not line.strip().startswith("#") and (shell or _starts_known(line))
    ]


def _starts_known(text: str) -> bool:
    words = _words(_PROMPT.sub("", text.strip(), count=1))
    return bool(words) and (words[0] in KNOWN_PROGRAMS or words[0].upper() in SQL_VERBS)


def _words(part: str) -> list[str]:
    """The words of one command with its wrappers gone: `sudo -u x`, `FOO=1`, `env`, `time`, `xargs`."""
    words = part.split()
    while words:
        head = words[0].rsplit("/", 1)[-1]
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=\S*", words[0]) or head in {"env", "time", "nohup", "exec"}:
            words = words[1:]
        elif head in {"sudo", "doas", "xargs", "watch"}:
            words = words[1:]
            while words and words[0].startswith("-"):
                words = words[2:] if words[0] in {"-u", "-g", "-n", "-I", "-P"} else words[1:]
        elif head == "timeout":
            words = [w for w in words[1:] if not w.startswith("-")][1:]
        else:
            return [head, *words[1:]]
    return []


def _parts(line: str) -> list[str]:
    """The commands of a pipeline or chain (`|`, `||`, `&&`, `;`), quotes kept whole."""
    blanked = _QUOTED.sub(lambda m: "_" * len(m.group()), line)
    cuts = [(m.start(), m.end()) for m in _SPLIT.finditer(blanked)]
    starts = [0] + [end for _, end in cuts]
    ends = [start for start, _ in cuts] + [len(line)]
    return [line[a:b] for a, b in zip(starts, ends, strict=True)]


def _without_quoted(line: str) -> str:
    """The line with quoted strings blanked, so a `;` or `|` inside quotes splits nothing."""
    return _QUOTED.sub("''", line)
