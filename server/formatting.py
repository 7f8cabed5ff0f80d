"""The readable text of each tool answer: what a model reads beside the structured output."""

from __future__ import annotations

import json

from devrag.retrieval.alert_catalog import AlertMatch
from devrag.retrieval.review_age import ReviewAge
from devrag.server.outputs import (
    DocumentMeta,
    DocumentPage,
    FeedbackOutput,
    Freshness,
    Passage,
    Result,
    Review,
    SourcesOutput,
)


def short(sha: str | None) -> str:
    return sha[:12] if sha else "unknown"


def result_line(r: Result) -> str:
    title = f" | {r.title}" if r.title != r.path else ""
    meta = f" | {meta_line(r.metadata)}" if r.metadata and meta_line(r.metadata) else ""
    age = f" | {review_line(r.review)}" if r.review and review_line(r.review) else ""
    found = f" | {how}" if (how := route_words(r.alert_match)) else ""
    return (
        f"[{r.rank}] {r.repo}:{r.path} @ {short(r.commit)}{title} | {r.doc_type}{meta}{age} "
        f"| score {r.score:.3f}{found}"
    )


def review_line(review: Review | ReviewAge) -> str:
    """`changed 2026-03-01` and, past the limit, `STALE: 412 days since review (limit 180)`."""
    parts = [f"changed {review.last_commit_date}"] if review.last_commit_date else []
    if review.stale:
        since = "review" if review.basis == "last_reviewed" else "last change"
        parts.append(f"STALE: {review.age_days} days since {since} (limit {review.stale_after_days})")
    return ", ".join(parts)


def route_words(match: AlertMatch | None) -> str | None:
    """Why an alert put this document first: `runbook_url of X`, `catalogue: X (rule ops:rules.yml)`."""
    if match is None:
        return None
    if match.source == "runbook_url":
        return f"runbook_url of {match.alert or 'the alert'}"
    where = f"rule {match.rule}" if match.rule else match.source.replace("_", " ")
    return f"catalogue: {match.alert} ({where})"


def meta_line(m: DocumentMeta) -> str:
    """`service payments (from path), team sre, sev p1, tags db+disk, reviewed 2026-02-27`."""
    parts = []
    if m.service:
        parts.append(f"service {m.service}{' (from path)' if m.service_inferred else ''}")
    parts += [f"{label} {value}" for label, value in (("team", m.team), ("sev", m.severity)) if value]
    if m.tags:
        parts.append(f"tags {'+'.join(m.tags[:5])}")
    if m.last_reviewed:
        parts.append(f"reviewed {m.last_reviewed}")
    return ", ".join(parts)


def destructive_warning(p: Passage) -> str | None:
    """One line before a passage that quotes destructive commands, naming them, for the agent to stop on."""
    named = [c.text.removeprefix("$ ") for c in p.commands if c.kind == "destructive"]
    if not named:
        return None
    shown = "; ".join(_clip(text, 80) for text in named[:2])
    more = f" (+{len(named) - 2} more)" if len(named) > 2 else ""
    return f"! destructive: {shown}{more} — confirm before running"


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def citation(r: Result, n: int, p: Passage) -> str:
    """`[1.2] #L10-L25 | Heading > Sub | score 3.210`: the lines in the document of result 1."""
    crumb = f" | {' > '.join(p.headings)}" if p.headings else ""
    score = "matched by title" if p.via_title else f"score {p.score:.3f}"
    return f"[{r.rank}.{n}] #L{p.start_line}-L{p.end_line}{crumb} | {score}"


def _get_document_call(repo: str, path: str, section: str | None = None, offset: int | None = None) -> str:
    """The call that reads more; strings are JSON-quoted so a quote in a heading keeps it valid."""
    args = [f"repo={json.dumps(repo)}", f"path={json.dumps(path)}"]
    if section:
        args.append(f"section={json.dumps(section)}")
    if offset:
        args.append(f"offset={offset}")
    return f"get_document({', '.join(args)})"


def result_block(r: Result) -> str:
    lines = [result_line(r)]
    for n, p in enumerate(r.passages, start=1):
        warning = destructive_warning(p)
        if warning:
            lines.append(warning)
        lines.append(citation(r, n, p))
        if p.text:
            lines.append(p.text)
        if p.truncated:
            call = _get_document_call(r.repo, r.path, p.headings[-1] if p.headings else None)
            what = "cut" if p.text else "not shown"
            lines.append(f"[{what} to fit max_tokens ({p.tokens_cut} tokens); {call} returns it whole]")
    if r.passages_left_out:
        more = r.passages_left_out
        lines.append(
            f"[{more} more matching section{'s' if more != 1 else ''} not shown; "
            f"{_get_document_call(r.repo, r.path)} reads the document]"
        )
    return "\n".join(lines)


def freshness_line(f: Freshness) -> str:
    if f.behind is None:
        return f"{f.repo}: indexed at {short(f.indexed_commit)}; its HEAD is unknown (not reachable here)."
    if f.behind:
        return (
            f"{f.repo}: indexed at {short(f.indexed_commit)}, but HEAD has moved on to {short(f.head)}: "
            "these passages may be out of date."
        )
    return f"{f.repo}: indexed at {short(f.indexed_commit)}, which is its HEAD (up to date)."


def search_text(
    results: list[Result],
    left_out: int,
    freshness: list[Freshness],
    notes: list[str],
    max_tokens: int,
    query_id: str,
) -> str:
    parts = [result_block(r) for r in results]
    if not results and not left_out:
        parts.append("No results.")
    tail = [freshness_line(f) for f in freshness]
    if left_out:
        tail.append(
            f"{left_out} more document{'s' if left_out != 1 else ''} left out to fit "
            f"max_tokens={max_tokens}: raise max_tokens to see them."
        )
    tail.extend(notes)
    tail.append(f"query_id: {query_id}")
    parts.append("\n".join(tail))
    return "\n\n".join(parts)


def _values(counts: dict[str, int], shown: int = 12) -> str:
    """`payments 8, checkout 3, ... (+4 more)`: the most common values with their document counts."""
    text = ", ".join(f"{value} {n}" for value, n in list(counts.items())[:shown])
    return text + (f", ... (+{len(counts) - shown} more)" if len(counts) > shown else "")


def page_text(page: DocumentPage, lines: list[str], cut: bool) -> str:
    where = f"{page.repo}:{page.path} @ {short(page.commit)} | {page.title}"
    if page.section:
        where += f" | section {page.section}"
    end = page.start_line + max(len(lines), 1) - 1
    read = page.offset + len(lines)
    head = f"{where} | file lines {page.start_line}-{end} ({read} of {page.total_lines} lines read)"
    if page.source == "chunks":
        head += " (reassembled from the index: the repository is not reachable)"
    body = "\n".join(lines)
    foot = []
    if cut:  # the next page starts after it: say how to read the whole line
        again = _get_document_call(page.repo, page.path, page.section, page.offset)
        foot.append(
            f"[line {page.start_line} cut to fit max_tokens: call {again} with more to read it whole]"
        )
    if read < page.total_lines:
        call = _get_document_call(page.repo, page.path, page.section, read)
        foot.append(f"[The document continues: call {call} for the next page.]")
    return "\n".join([head, body, *foot]) if foot else f"{head}\n{body}"


def sources_text(out: SourcesOutput) -> str:
    where = f" {out.store}" if out.store else ""
    lines = [
        f"Index{where}: embedding model {out.embed_model}, reranker {out.rerank_model} "
        f"(models {out.models}){'; re-indexing on new commits' if out.watching else ''}."
    ]
    if not out.repos:
        lines.append("No repositories indexed yet.")
    for r in out.repos:
        state = {None: "HEAD unknown", True: f"behind HEAD {short(r.head)}", False: "up to date"}[r.behind]
        if r.updating:
            state += ", update under way"
        types = ", ".join(f"{t} {n}" for t, n in sorted(r.doc_types.items()))
        lines.append(
            f"- {r.name}: indexed at {short(r.indexed_commit)} ({state}); {r.files} files, "
            f"{r.chunks} chunks ({types}){f'; {r.path}' if r.path else ''}"
        )
        lines += [f"  {field}: {_values(counts)}" for field, counts in r.metadata.items() if counts]
        if r.alert_catalogue:
            by = ", ".join(f"{source.replace('_', ' ')} {n}" for source, n in r.alert_catalogue.items())
            lines.append(f"  alert catalogue (names that route here): {by}")
    return "\n".join(lines)


def feedback_text(out: FeedbackOutput) -> str:
    verdict = "helpful" if out.helpful else "not helpful"
    what = out.document or "the answer as a whole"
    note = " with the note" if out.note else ""
    return f"Recorded{note}: {what} was {verdict} (query_id {out.query_id})."
