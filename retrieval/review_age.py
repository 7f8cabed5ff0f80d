"""How old a document's knowledge is: when it was last reviewed, or else last changed.

Age is counted from `last_reviewed` (front matter) when a document has one, and from the last
commit that touched it otherwise. A review date is a person's statement that the steps were
checked and still hold, which a commit is not: a repository-wide reformat or link fix touches
every page and would make all of them look fresh, while a runbook reviewed and found right needs
no edit to stay current. Without a review date the last commit is the only evidence there is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, Field

AgeBasis = Literal["last_reviewed", "last_commit"]


class ReviewAge(BaseModel):
    """A result's review age, as of the day of the search (UTC)."""

    last_commit_date: str | None = None  # YYYY-MM-DD (UTC) of the last commit that touched the file
    last_reviewed: str | None = None  # front matter `last_reviewed`, YYYY-MM-DD
    basis: AgeBasis | None = None  # which of the two `age_days` counts from; None when neither is known
    age_days: int | None = None
    stale: bool = False  # age_days past the configured age (`stale_after_days`)
    stale_after_days: int
    # What recency added to the document's score in the ranking; None when the weight is off.
    recency: float | None = Field(default=None)


def review_age(payload: Mapping[str, Any], stale_after_days: int, today: dt.date | None = None) -> ReviewAge:
    """The review age of the document a chunk payload belongs to."""
    reviewed, changed = payload.get("last_reviewed"), payload.get("last_commit_date")
    basis: AgeBasis | None = "last_reviewed" if reviewed else "last_commit" if changed else None
    since = reviewed or changed
    age = None
    if since:
        age = max(((today or _today()) - dt.date.fromisoformat(since)).days, 0)
    return ReviewAge(
        last_commit_date=changed,
        last_reviewed=reviewed,
        basis=basis,
        age_days=age,
        stale=age is not None and age > stale_after_days,
        stale_after_days=stale_after_days,
    )


def freshness(age: ReviewAge) -> float:
    """1 for a document reviewed today, halving every `stale_after_days`; 0 when its age is unknown.

    A half-life rather than a cliff at the stale age: a month-old page and a day-old one differ
    a little, a page twice the stale age counts a quarter.
    """
    if age.age_days is None:
        return 0.0
    return float(0.5 ** (age.age_days / age.stale_after_days))


def commit_date(seconds: int) -> str:
    """A commit time (seconds since the epoch) as the UTC date stored on chunks."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).date().isoformat()


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()
