"""Credentials out of indexed text: every secret a detector finds becomes `[REDACTED:<kind>]`.

Runbooks hold connection strings, tokens pasted into examples and keys in manifests, and devrag
hands its text to agents, so secrets are replaced before anything is chunked, embedded or
stored, and again in every document read from Git. Detection is detect-secrets' plugins (AWS,
GitHub, GitLab, Slack, Stripe... tokens, JWTs, basic-auth URLs, secret keywords, high-entropy
strings) and its heuristic filters (placeholders such as `<password>` and `${TOKEN}`, `$VAR`
references, UUIDs, sequential strings), called directly: its scan functions read files from disk,
keep global settings and cost about 4x more per line through their argument injection.

Only the secret is replaced, within its line, so line numbers and citations stay true. A private
key's body is replaced line by line between its BEGIN and END lines. Two choices were measured on
the shared runbook corpora (`devrag.eval.redaction_bench`): quoted 40- and 64-digit hex strings
are left alone (commit SHAs and SHA-256 digests, e.g. Redis script hashes and checksums, were
most of the high-entropy hits there), and public IP addresses are not treated as credentials.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from pathlib import PurePosixPath

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.filters.allowlist import is_line_allowlisted
from detect_secrets.filters.heuristic import (
    is_indirect_reference,
    is_likely_id_string,
    is_not_alphanumeric_string,
    is_potential_uuid,
    is_prefixed_with_dollar_sign,
    is_sequential_string,
    is_templated_secret,
)
from detect_secrets.plugins.base import BasePlugin
from detect_secrets.util.code_snippet import get_code_snippet
from detect_secrets.util.filetype import FileType, determine_file_type
from markdown_it import MarkdownIt

from devrag.ingest.markdown_chunker import MARKDOWN_SUFFIXES
from devrag.ingest.redaction_marker import marker

PRIVATE_KEY = "private-key"
_MD = MarkdownIt("commonmark")
# Not credentials (IP addresses), or found here as whole blocks rather than by their first line.
_NOT_SCANNED = {"Public IP (ipv4)", "Private Key"}
_GENERIC = {"Secret Keyword", "Base64 High Entropy String", "Hex High Entropy String"}
_PEM_LABEL = r"([A-Z0-9]+ )*PRIVATE KEY( BLOCK)?-----"
_PEM = re.compile(rf"-----BEGIN {_PEM_LABEL}(?P<body>.*?)-----END {_PEM_LABEL}", re.DOTALL)
_SCALARS = {"true", "false", "yes", "no", "null", "none"}
_PLACEHOLDER = re.compile(r"(.)\1{5}|example|redacted|placeholder|changeme", re.IGNORECASE)
_DIGEST_LENGTHS = {40, 64}  # SHA-1 (git object names) and SHA-256 digests
# A URL's password (`scheme://user:password@host`): any characters RFC 3986 lets userinfo hold
# unescaped, `!` and `*` included, which detect-secrets' basic-auth pattern stops at.
# A scheme starts where no scheme character stands before it and is at most 32 long: otherwise a long
# run of letters is tried from each of its characters, each try scanning to the run's end (a 400 KB
# line took two minutes).
_URL_PASSWORD = re.compile(
    r"(?<![A-Za-z0-9+.\-])[A-Za-z][A-Za-z0-9+.\-]{0,31}://[^\s:/?#@\[\]]+:(?P<password>[^\s/?#@\[\]]+)@"
)
_BASIC_AUTH = "basic-auth-credentials"
# Keys whose value names a secret rather than holding it (`secretName`, `secret_ref`, `existingSecret`).
_REFERENCE_KEY = re.compile(r"(name|ref)$|^existing", re.IGNORECASE)
# The rest of a token after a reported value: base64 and token characters, dots only inside it.
_TOKEN_TAIL = r"[A-Za-z0-9_\-+/=]*(?:\.[A-Za-z0-9_\-+/=]+)*"


@dataclass(frozen=True)
class Redaction:
    """A text with its secrets replaced, and how many values of each kind were replaced."""

    text: str
    kinds: Counter[str] = field(default_factory=Counter)

    @property
    def count(self) -> int:
        return sum(self.kinds.values())


def redact(path: str, text: str) -> Redaction:
    """The text with every detected secret replaced in place; other characters and lines unchanged.

    `path` picks the detectors' rules (YAML and config files do not need quotes around a value
    after `password:`). Every occurrence of a found value is replaced, on any line, so a token
    that is flagged once (`TOKEN="..."`) does not survive where it is used (`curl -H ...`).
    """
    text, kinds = _redact_private_keys(text)
    found: dict[str, str] = {}
    lines = text.split("\n")
    names = _scan_names(path, text, len(lines))
    for number in range(1, len(lines) + 1):
        for value, kind in _secrets_in(names[number - 1], lines, number):
            found.setdefault(value, kind)
    # Issuer-specific finds first (with their token tails), so a token that a generic rule also
    # reported is named by its issuer; then longer values before the values inside them.
    generic = {kind_of(kind) for kind in _GENERIC}
    for value in sorted(found, key=lambda v: (found[v] in generic, -len(v))):
        text, replaced = _occurrences(value).subn(marker(found[value]), text)
        kinds[found[value]] += replaced
    return Redaction(text, +kinds)


def _scan_names(path: str, text: str, n_lines: int) -> list[str]:
    """The file name each line is scanned as, which picks the detectors' rules for it.

    Code blocks in Markdown hold what config files hold (`export DB_PASSWORD=...`, YAML, INI),
    where a value needs no quotes, so their lines are read as the fence's language when
    detect-secrets knows it (`yaml`, `py`, `go`, `tf`...) and as a config file otherwise; the
    prose around them, as Markdown, needs quotes. Measured on the planted credentials: unquoted
    values in fences were most of what Markdown rules missed (`devrag.eval.redaction_bench`).
    """
    names = [path] * n_lines
    if PurePosixPath(path).suffix.lower() not in MARKDOWN_SUFFIXES:
        return names
    for token in _MD.parse(text):
        if token.type in ("fence", "code_block") and token.map:
            language = token.info.strip().split(" ")[0].lower() if token.info else ""
            known = language and determine_file_type(f"code.{language}") != FileType.OTHER
            name = f"{path}.{language}" if known else f"{path}.conf"
            first, end = token.map
            names[first:end] = [name] * (end - first)
    return names


def _occurrences(value: str) -> re.Pattern[str]:
    """Where a found value stands in the text: each token that starts with it, to the token's end.

    Detectors may report only a token's head: the JWT pattern stops after `header.payload.` and
    the GitHub one reports its prefix group (`ghp`), so the token characters that follow a value
    go with it. A value is never matched in the middle of a longer word (`pass1` in `bypass1`).
    """
    before = r"(?<![A-Za-z0-9])" if value[0].isalnum() else ""
    return re.compile(before + re.escape(value) + _TOKEN_TAIL)


def _redact_private_keys(text: str) -> tuple[str, Counter[str]]:
    """Private keys (PEM and OpenSSH) with each body line replaced; BEGIN and END lines kept."""
    kinds: Counter[str] = Counter()

    def body(match: re.Match[str]) -> str:
        kinds[PRIVATE_KEY] += 1
        hidden = "\n".join(_hide_line(line) for line in match.group("body").split("\n"))
        return match.group(0).replace(match.group("body"), hidden, 1)

    return _PEM.sub(body, text), kinds


def _hide_line(line: str) -> str:
    """A key body line as the marker, its indentation and any escaped newlines kept."""
    content = line.strip()
    if not content:
        return line
    indent = line[: len(line) - len(line.lstrip())]
    return indent + marker(PRIVATE_KEY)


def _secrets_in(path: str, lines: list[str], number: int) -> list[tuple[str, str]]:
    """(value, kind) of each secret on a line (1-based) that survives detect-secrets' filters.

    A line marked `pragma: allowlist secret` (or under `pragma: allowlist nextline secret`) is
    kept as written, as detect-secrets keeps it: the way to leave a known example in a runbook.
    """
    line = lines[number - 1]
    if not line.strip():
        return []
    out = [(value, _BASIC_AUTH) for value in _url_passwords(line)]
    for plugin in _plugins():
        for secret in plugin.analyze_line(filename=path, line=line, line_number=number):
            value = _unquoted_word(secret.secret_value or "", line)
            if value and not _ordinary(value, line, plugin) and not _names_a_secret(secret.type, value, line):
                out.append((value, kind_of(secret.type)))
    # Line filters run only where something was found: the indirect-reference pattern alone
    # costs more than all the detectors together.
    if out and (
        is_indirect_reference(line)
        or is_line_allowlisted(filename=path, line=line, context=get_code_snippet(lines, number))
    ):
        return []
    return out


def _url_passwords(line: str) -> list[str]:
    """Passwords in the line's URLs, unless a placeholder or reference (`:${PASS}@`, `:<password>@`)."""
    found = (m.group("password") for m in _URL_PASSWORD.finditer(line))
    return [value for value in found if not _stands_in(value)]


def _unquoted_word(value: str, line: str) -> str:
    """A reported value as far as it is one word, unless the line quotes it whole.

    Config-file rules read `key = value` to the end of the line, which in a shell line is the
    rest of the command (`PGPASSWORD=xxx pg_repack -h ...`, seen in the GitLab runbooks).
    """
    if not any(f"{q}{value}{q}" in line for q in "'\""):
        return value.split()[0] if value.split() else ""
    return value


def _ordinary(value: str, line: str, plugin: BasePlugin) -> bool:
    """Whether a reported value is a placeholder, reference, identifier or digest, not a secret."""
    return (
        _stands_in(value)
        or is_sequential_string(value)
        or is_potential_uuid(value)
        or is_not_alphanumeric_string(value)
        or is_likely_id_string(value, line, plugin)
        or _is_digest(value)
    )


def _names_a_secret(secret_type: str, value: str, line: str) -> bool:
    """A keyword find whose key names or points at a secret (`secretName: checkout-db`,
    `existingSecret: redis-auth`, `tokenSecretRef: ...`): its value is the secret's name, which an
    engineer needs for `kubectl get secret`, not the secret."""
    if secret_type != "Secret Keyword":
        return False
    key = re.search(r"([A-Za-z0-9_.\-]+)[\"']?\s*[:=]\s*[\"']?" + re.escape(value), line)
    return key is not None and _REFERENCE_KEY.search(key.group(1)) is not None


def _stands_in(value: str) -> bool:
    """A template (`{{ pass }}`, `<password>`), a `$VAR` reference or a placeholder word, not a value."""
    return is_templated_secret(value) or is_prefixed_with_dollar_sign(value) or _is_placeholder(value)


def _is_placeholder(value: str) -> bool:
    """`false`, `null`, `XXXXXXXX`, `AKIAIOSFODNN7EXAMPLE`, `REDACTED`: what docs write for a secret.

    Random tokens hardly ever hold six equal characters in a row (about 3 in 100,000 for a
    32-digit hex key, far fewer for base64), and no issuer puts these words in one.
    """
    return value.lower() in _SCALARS or bool(_PLACEHOLDER.search(value))


def _is_digest(value: str) -> bool:
    return len(value) in _DIGEST_LENGTHS and all(c in string.hexdigits for c in value)


def kind_of(secret_type: str) -> str:
    """A detector's secret type as a marker kind: `AWS Access Key` -> `aws-access-key`."""
    return re.sub(r"[^a-z0-9]+", "-", secret_type.lower()).strip("-")


@cache
def _plugins() -> tuple[BasePlugin, ...]:
    """One instance of every detect-secrets plugin used, with its default settings.

    Made once: the instances hold compiled patterns and no per-scan state. None of them verifies
    a secret over the network (that happens only when detect-secrets' settings ask for it).
    """
    classes = get_mapping_from_secret_type_to_class()
    # Issuer-specific detectors first: a value several report is named by the one that knows it.
    order = sorted(classes, key=lambda kind: (kind in _GENERIC, kind))
    return tuple(classes[kind]() for kind in order if kind not in _NOT_SCANNED)
