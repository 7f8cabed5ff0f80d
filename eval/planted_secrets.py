"""A runbook corpus with fake credentials planted where real ones turn up: the redaction benchmark's input.

Each kind is written in the places runbooks really leak it (a shell export, an INI or YAML
block, a curl header, a connection string, JSON from an API, inline code), quoted and not, so
recall per kind says which of those places the detector covers. Values are random, of each
kind's real shape (AWS key IDs are `AKIA` plus 16 base32 characters, a JWT's header decodes to
JSON), from a seeded generator: the same seed plants the same corpus.
"""

from __future__ import annotations

import base64
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass

ALNUM = string.ascii_letters + string.digits


@dataclass(frozen=True)
class Planted:
    """One fake credential: its kind, the exact value that must not survive, and where it sits."""

    kind: str
    value: str
    path: str
    line: int  # 1-based


@dataclass(frozen=True)
class Kind:
    name: str
    count: int
    make: Callable[[random.Random], str]
    # Each context is Markdown lines; `{v}` is the value. One is picked per planted value, in turn.
    contexts: tuple[str, ...]


def _chars(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _jwt(rng: random.Random) -> str:
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = {"sub": f"svc-{_chars(rng, string.ascii_lowercase, 6)}", "iat": rng.randrange(1.6e9, 1.8e9)}
    signature = _b64url(bytes(rng.randrange(256) for _ in range(32)))
    return f"{header}.{_b64url(json.dumps(claims).encode())}.{signature}"


def _password(rng: random.Random) -> str:
    return _chars(rng, ALNUM, 12) + rng.choice("!#%^*-_") + _chars(rng, ALNUM, 3)


def _private_key(rng: random.Random) -> str:
    body = base64.b64encode(bytes(rng.randrange(256) for _ in range(256))).decode()
    return "\n".join(body[i : i + 64] for i in range(0, len(body), 64))


FENCE = "```"
KINDS: tuple[Kind, ...] = (
    Kind(
        "aws-access-key-id",
        10,
        lambda r: "AKIA" + _chars(r, string.ascii_uppercase + "234567", 16),
        (
            f"{FENCE}sh\nexport AWS_ACCESS_KEY_ID={{v}}\n{FENCE}",
            f"{FENCE}ini\n[default]\naws_access_key_id = {{v}}\n{FENCE}",
            "Rotate the key `{v}` in IAM once the incident is over.",
        ),
    ),
    Kind(
        "aws-secret-access-key",
        8,
        lambda r: _chars(r, ALNUM + "/+", 40),
        (
            f"{FENCE}sh\nexport AWS_SECRET_ACCESS_KEY={{v}}\n{FENCE}",
            f"{FENCE}ini\n[default]\naws_secret_access_key = {{v}}\n{FENCE}",
            f'{FENCE}json\n{{{{\n  "AccessKeyId": "AKIA...",\n  "SecretAccessKey": "{{v}}"\n}}}}\n{FENCE}',
        ),
    ),
    Kind(
        "github-token",
        10,
        lambda r: "ghp_" + _chars(r, ALNUM, 36),
        (
            f"{FENCE}sh\nexport GITHUB_TOKEN={{v}}\n{FENCE}",
            f'{FENCE}sh\ncurl -H "Authorization: token {{v}}" https://api.github.com/repos/acme/ops\n{FENCE}',
        ),
    ),
    Kind(
        "gitlab-token",
        6,
        lambda r: "glpat-" + _chars(r, ALNUM + "-_", 20),
        (
            f'{FENCE}sh\ncurl --header "PRIVATE-TOKEN: {{v}}" https://gitlab.example.com/api/v4/projects\n{FENCE}',
            "Use `GITLAB_TOKEN={v}` for the mirror job.",
        ),
    ),
    Kind(
        "slack-token",
        8,
        lambda r: (
            f"xoxb-{_chars(r, string.digits, 12)}-{_chars(r, string.digits, 13)}-{_chars(r, ALNUM, 24)}"
        ),
        (
            f"{FENCE}yaml\nslack:\n  bot_token: {{v}}\n{FENCE}",
            f"{FENCE}sh\nSLACK_BOT_TOKEN={{v}} ./notify.sh '#incidents'\n{FENCE}",
        ),
    ),
    Kind(
        "slack-webhook",
        6,
        lambda r: (
            "https://hooks.slack.com/services/T"
            + _chars(r, string.ascii_uppercase + string.digits, 8)
            + "/B"
            + _chars(r, string.ascii_uppercase + string.digits, 10)
            + "/"
            + _chars(r, ALNUM, 24)
        ),
        (
            f"{FENCE}yaml\nreceivers:\n  - name: oncall\n    slack_configs:\n      - api_url: {{v}}\n{FENCE}",
            f'{FENCE}sh\ncurl -X POST -d \'{{{{"text": "deploy done"}}}}\' {{v}}\n{FENCE}',
        ),
    ),
    Kind(
        "stripe-key",
        6,
        lambda r: "sk_live_" + _chars(r, ALNUM, 24),
        (f"{FENCE}sh\nexport STRIPE_API_KEY={{v}}\n{FENCE}", "The payments canary reads `{v}` from its env."),
    ),
    Kind(
        "private-key",
        8,
        _private_key,
        (
            f"{FENCE}\n-----BEGIN RSA PRIVATE KEY-----\n{{v}}\n-----END RSA PRIVATE KEY-----\n{FENCE}",
            f"{FENCE}yaml\nstringData:\n  tls.key: |\n    -----BEGIN PRIVATE KEY-----\n{{v}}\n"
            f"    -----END PRIVATE KEY-----\n{FENCE}",
        ),
    ),
    Kind(
        "jwt",
        10,
        _jwt,
        (
            f'{FENCE}sh\ncurl -H "Authorization: Bearer {{v}}" https://api.internal/v1/jobs\n{FENCE}',
            f"{FENCE}yaml\nauth:\n  token: {{v}}\n{FENCE}",
        ),
    ),
    Kind(
        "basic-auth-password",
        10,
        # What a URL may hold unescaped (RFC 3986: unreserved characters and sub-delimiters).
        lambda r: _chars(r, ALNUM, 12) + r.choice("-._~!*") + _chars(r, ALNUM, 3),
        (
            f'{FENCE}sh\npsql "postgres://app:{{v}}@db-primary.internal:5432/app"\n{FENCE}',
            f"{FENCE}sh\nredis-cli -u redis://default:{{v}}@redis-cache:6379 info\n{FENCE}",
            "Grafana's API answers at `https://admin:{v}@grafana.internal/api/health`.",
        ),
    ),
    Kind(
        "password",
        10,
        _password,
        (
            f"{FENCE}yaml\nstringData:\n  password: {{v}}\n{FENCE}",
            f'{FENCE}sh\nexport DB_PASSWORD="{{v}}"\n{FENCE}',
            f'{FENCE}json\n{{{{"username": "replicator", "password": "{{v}}"}}}}\n{FENCE}',
        ),
    ),
    Kind(
        "api-key",
        8,
        lambda r: _chars(r, "0123456789abcdef", 32),
        (
            f"{FENCE}sh\nexport DD_API_KEY={{v}}\n{FENCE}",
            f'{FENCE}yaml\ndatadog:\n  api_key: "{{v}}"\n{FENCE}',
        ),
    ),
)

_SECTIONS = (
    "Check the service",
    "Mitigation",
    "Escalation",
    "Rollback",
    "Verify the fix",
)


def planted_corpus(seed: int = 13, per_file: int = 10) -> tuple[dict[str, str], list[Planted]]:
    """Runbook files (path -> Markdown) and every credential planted in them, with its line."""
    rng = random.Random(seed)
    items = [(kind, i) for kind in KINDS for i in range(kind.count)]
    rng.shuffle(items)
    files: dict[str, str] = {}
    planted: list[Planted] = []
    for start in range(0, len(items), per_file):
        path = f"runbooks/service-{start // per_file:02d}/runbook.md"
        lines = [f"# Service {start // per_file} runbook", "", "Owner: platform team.", ""]
        for n, (kind, i) in enumerate(items[start : start + per_file]):
            value = kind.make(rng)
            block = kind.contexts[i % len(kind.contexts)].format(v=value)
            lines += [f"## {_SECTIONS[n % len(_SECTIONS)]} ({n + 1})", "", "Run this from the bastion:", ""]
            first_value_line = len(lines) + 1 + block.split(value)[0].count("\n")
            planted.append(Planted(kind.name, value, path, first_value_line))
            lines += [*block.split("\n"), ""]
        files[path] = "\n".join(lines)
    return files, planted
