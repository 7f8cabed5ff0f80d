"""What a GitHub or GitLab push delivery says, and whether it is genuine: pure functions, no I/O.

Both forges describe a push alike (ref, new commit, the repository's URLs and default branch) but
sign, name and number their deliveries differently; a `Forge` holds those differences so the
receiver in `webhooks` has one code path for both.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import BaseModel, StringConstraints

Headers = Mapping[str, str]
# A full commit id, SHA-1 or SHA-256: anything else must not reach git as a revision.
CommitId = Annotated[str, StringConstraints(pattern=r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")]


@dataclass(frozen=True)
class Push:
    """A push, as both forges describe it."""

    ref: str
    after: str
    default_branch: str | None
    full_name: str
    urls: tuple[str, ...]

    @property
    def deletes_branch(self) -> bool:
        return set(self.after) == {"0"}

    @property
    def to_default_branch(self) -> bool:
        return self.default_branch is not None and self.ref == f"refs/heads/{self.default_branch}"


class _GitHubRepository(BaseModel):
    full_name: str
    default_branch: str | None = None
    clone_url: str | None = None
    ssh_url: str | None = None
    html_url: str | None = None
    git_url: str | None = None


class _GitHubPush(BaseModel):
    ref: str
    after: CommitId
    repository: _GitHubRepository

    def push(self) -> Push:
        r = self.repository
        urls = (r.clone_url, r.ssh_url, r.html_url, r.git_url)
        return Push(self.ref, self.after, r.default_branch, r.full_name, _present(urls))


class _GitLabProject(BaseModel):
    path_with_namespace: str
    default_branch: str | None = None
    git_http_url: str | None = None
    git_ssh_url: str | None = None
    web_url: str | None = None


class _GitLabPush(BaseModel):
    ref: str
    after: CommitId
    project: _GitLabProject

    def push(self) -> Push:
        p = self.project
        urls = (p.git_http_url, p.git_ssh_url, p.web_url)
        return Push(self.ref, self.after, p.default_branch, p.path_with_namespace, _present(urls))


def _present(urls: tuple[str | None, ...]) -> tuple[str, ...]:
    return tuple(u for u in urls if u)


@dataclass(frozen=True)
class Forge:
    """How one forge authenticates, names and numbers its deliveries, and shapes a push."""

    name: str
    push_event: str
    authentic: Callable[[Headers, bytes, str], bool]
    event: Callable[[Headers], str]
    delivery_id: Callable[[Headers], str | None]
    parse: Callable[[bytes], Push]
    """Raises pydantic.ValidationError when the body is not JSON or not a push."""


def _github_signed(headers: Headers, body: bytes, secret: str) -> bool:
    """HMAC-SHA256 of the raw body, compared in constant time (GitHub's `X-Hub-Signature-256`)."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    given = headers.get("x-hub-signature-256", "")
    return hmac.compare_digest(given.encode(), f"sha256={digest}".encode())


def _gitlab_token(headers: Headers, _body: bytes, secret: str) -> bool:
    """GitLab sends the secret itself (`X-Gitlab-Token`); compared in constant time."""
    return hmac.compare_digest(headers.get("x-gitlab-token", "").encode(), secret.encode())


def _gitlab_delivery(headers: Headers) -> str | None:
    # Idempotency-Key is documented to stay the same across GitLab's retries of one event.
    return headers.get("idempotency-key") or headers.get("x-gitlab-event-uuid")


GITHUB = Forge(
    name="github",
    push_event="push",
    authentic=_github_signed,
    event=lambda h: h.get("x-github-event", ""),
    delivery_id=lambda h: h.get("x-github-delivery"),
    parse=lambda body: _GitHubPush.model_validate_json(body).push(),
)
GITLAB = Forge(
    name="gitlab",
    push_event="Push Hook",
    authentic=_gitlab_token,
    event=lambda h: h.get("x-gitlab-event", ""),
    delivery_id=_gitlab_delivery,
    parse=lambda body: _GitLabPush.model_validate_json(body).push(),
)
