"""Secrets are replaced before indexing; ordinary runbook lines are left exactly as written."""

from __future__ import annotations

import pytest

from devrag.ingest.redaction import marker, redact

# Fake credentials of each real shape (random, never issued).
AWS_KEY_ID = "AKIAQ4TZ7MWRB2KXN5PD"
AWS_SECRET = "q8Zr3Jd0VbLwX2mPf7Ks9TnYc1HgEu4AoRiB6lWz"
GITHUB = "ghp_R7mK2pXw9QzL4vT8bN3cY6hJ1sD5fG0aEuWi"
GITLAB = "glpat-x8Kp2RzW7mNq4VbT9cLs"
SLACK = "xoxb-482716395021-5938172640183-Zq8Rt3Lm9Vx2Kp7Wc4Nb6Hs1"
SLACK_HOOK = "https://hooks.slack.com/services/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"
STRIPE = "sk_live_51HqLw9Rz3Vx8Kp2Mc7Tn4Bq6"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJzdmMtcGF5bWVudHMiLCJpYXQiOjE3MDAwMDAwMDB9."
    "Zq8Rt3Lm9Vx2Kp7Wc4Nb6Hs1Yd5Gf0Ja2Ue9Io3Pk7"
)
PASSWORD = "Tr0ub4dor-n9Qx7"
HEX_KEY = "9f3b6c2ad17e48b0c5f29a64e18d7b3c"

SECRET_LINES = [
    ("sh", f"export AWS_ACCESS_KEY_ID={AWS_KEY_ID}", AWS_KEY_ID, "aws-access-key"),
    ("ini", f"aws_secret_access_key = {AWS_SECRET}", AWS_SECRET, "secret-keyword"),
    ("sh", f'curl -H "Authorization: token {GITHUB}" https://api.github.com/user', GITHUB, "github-token"),
    (
        "sh",
        f'curl --header "PRIVATE-TOKEN: {GITLAB}" https://gitlab.example.com/api/v4/projects',
        GITLAB,
        "gitlab-token",
    ),
    ("yaml", f"  bot_token: {SLACK}", SLACK, "slack-token"),
    ("yaml", f"      - api_url: {SLACK_HOOK}", SLACK_HOOK, "slack-token"),
    ("sh", f"export STRIPE_API_KEY={STRIPE}", STRIPE, "stripe-access-key"),
    ("sh", f'curl -H "Authorization: Bearer {JWT}" https://api.internal/v1/jobs', JWT, "json-web-token"),
    (
        "sh",
        f'psql "postgres://app:{PASSWORD}@db-primary.internal:5432/app"',
        PASSWORD,
        "basic-auth-credentials",
    ),
    # RFC 3986 lets a URL's password hold `!` and `*` unescaped; detect-secrets' own pattern stops there
    (
        "sh",
        "redis-cli -u redis://default:Kq7vR2mW!x9Lp@redis-cache:6379 info",
        "Kq7vR2mW!x9Lp",
        "basic-auth-credentials",
    ),
    (
        "sh",
        "curl https://admin:*Zt4Nw8Qe2Hs@grafana.internal/api/health",
        "*Zt4Nw8Qe2Hs",
        "basic-auth-credentials",
    ),
    ("yaml", f"  password: {PASSWORD}", PASSWORD, "secret-keyword"),
    ("json", f'{{"username": "replicator", "password": "{PASSWORD}"}}', PASSWORD, "secret-keyword"),
    ("sh", f"export DD_API_KEY={HEX_KEY}", HEX_KEY, "secret-keyword"),
    ("yaml", f'  checksum_token: "{HEX_KEY}"', HEX_KEY, "hex-high-entropy-string"),
]

ORDINARY_LINES = [
    "      secretName: checkout-db",  # names a Kubernetes Secret: what `kubectl get secret` needs
    "  existingSecret: redis-auth",
    "git revert 3f9c2a17d4b8e6f05a1c9d2e7b3f48a6c5d0e912",  # a commit SHA
    'echo "3f9c2a17d4b8e6f05a1c9d2e7b3f48a6c5d0e912"',  # quoted too
    "image: registry.gitlab.com/app@sha256:4c1a3b9e5f2d8a7c6b0e9f1d3a5c7e2b4d6f8a0c1e3b5d7f9a2c4e6b8d0f1a3c",
    '  checksum: "b5bb9d8014a0f9b1d61e21e796d78dccdf1352f23cd32812f4850b878ae4944c"',  # a SHA-256
    "kubectl delete pod checkout-api-7d9f8b6c5-x2k4q -n payments",
    "request_id: 123e4567-e89b-12d3-a456-426614174000",  # a UUID
    "  password: <password>",
    "  password: ${DB_PASSWORD}",
    "export PGPASSWORD=$DB_PASSWORD",
    'psql "postgres://app:${DB_PASSWORD}@db-primary.internal:5432/app"',
    "Grafana answers at https://admin:<password>@grafana.internal/api/health",
    "git clone ssh://git@gitlab.com:22/ops/runbooks.git",
    'password = "{{ vault_db_password }}"',
    "export AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE",  # AWS's own documentation key
    "slack_api_url: https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "  auth_key: false",
    'secret = get_secret("payments/db")',
    "Rotate the password in Vault, then restart the pods.",
    "-----BEGIN CERTIFICATE-----",
    "The key block starts with `-----BEGIN PRIVATE KEY-----`.",
    'etcd_disk_wal_fsync_duration_seconds_bucket{le="0.008"} CrashLoopBackOff ERR_CONN_RESET',
]


def fenced(language: str, line: str) -> str:
    return f"# Runbook\n\n## Fix\n\n```{language}\n{line}\n```\n"


@pytest.mark.parametrize(("language", "line", "secret", "kind"), SECRET_LINES)
def test_each_credential_kind_is_replaced_by_its_marker_and_nothing_else_changes(
    language: str, line: str, secret: str, kind: str
) -> None:
    text = fenced(language, line)
    result = redact("runbooks/payments.md", text)
    assert secret not in result.text
    assert result.text == text.replace(secret, marker(kind))
    assert result.kinds == {kind: 1}


@pytest.mark.parametrize("line", ORDINARY_LINES)
def test_ordinary_runbook_lines_are_not_flagged(line: str) -> None:
    for text in (fenced("sh", line), fenced("yaml", line), f"# Runbook\n\n{line}\n"):
        result = redact("runbooks/payments.md", text)
        assert result.text == text
        assert result.count == 0


def test_a_private_key_body_is_replaced_line_by_line_and_its_lines_stay_where_they_were() -> None:
    body = [
        "MIIEowIBAAKCAQEA0Zq8Rt3Lm9Vx2Kp7Wc4Nb6Hs1Yd5Gf0Ja2Ue9Io3Pk7",
        "Lq9Vz3Rk7Mx2Wp8Tc4Nb6Hs1Zq8Rt3Lm9Vx2Kp7W",
    ]
    lines = ["```yaml", "tls.key: |", "  -----BEGIN RSA PRIVATE KEY-----", *(f"  {b}" for b in body)]
    lines += ["  -----END RSA PRIVATE KEY-----", "```", "after: kept"]
    result = redact("k8s/secret.md", "\n".join(lines))
    out = result.text.split("\n")
    assert len(out) == len(lines)
    assert out[3:5] == [f"  {marker('private-key')}"] * 2
    assert out[2] == lines[2] and out[5:] == lines[5:]
    assert result.kinds == {"private-key": 1}


def test_a_value_found_once_is_replaced_wherever_it_appears_but_not_inside_longer_words() -> None:
    text = "\n".join(
        [
            "```sh",
            f"export GITHUB_TOKEN={GITHUB}",
            "```",
            f"Then pass `{GITHUB}` to the mirror job.",
            "```yaml",
            "password: hunter22",
            "```",
            "The bypass: hunter22x and xhunter22 are other words.",
        ]
    )
    result = redact("runbooks/mirror.md", text)
    assert GITHUB not in result.text
    assert result.text.count(marker("github-token")) == 2
    assert "xhunter22 are other words" in result.text
    assert result.kinds == {"github-token": 2, "secret-keyword": 2}


def test_unquoted_config_values_end_at_the_first_space_so_the_command_survives() -> None:
    line = "command: PGPASSWORD=s3cr3tPa55word pg_repack -h db-01 -U gitlab-superuser --no-kill-backend"
    result = redact("runbooks/repack.md", fenced("yaml", line))
    assert f"PGPASSWORD={marker('secret-keyword')} pg_repack -h db-01 -U gitlab-superuser" in result.text


def test_yaml_and_config_files_need_no_quotes_but_markdown_prose_does() -> None:
    assert redact("deploy/values.yaml", f"db:\n  password: {PASSWORD}\n").count == 1
    assert redact("runbooks/db.md", f"Log in, password: {PASSWORD}, and check.\n").count == 0
    assert redact("runbooks/db.md", f'Log in with password: "{PASSWORD}" and check.\n').count == 1


def test_an_allowlisted_example_is_kept_as_written() -> None:
    text = fenced("yaml", f"  password: {PASSWORD}  # pragma: allowlist secret")
    assert redact("runbooks/example.md", text).text == text


def test_a_url_password_after_a_long_unbroken_run_of_letters_is_still_found() -> None:
    # The scheme pattern starts only where a scheme can start; a 200 KB run of letters before it
    # once cost minutes of backtracking, and the URL after it must still be read.
    text = "x" * 200_000 + " postgres://app:Vq8sZr2Lm4Tn@db:5432/app"
    assert (
        redact("notes.md", text).text
        == "x" * 200_000 + " postgres://app:[REDACTED:basic-auth-credentials]@db:5432/app"
    )
