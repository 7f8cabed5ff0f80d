"""The readable text of each tool answer: what a model reads beside the structured output."""

from __future__ import annotations

import json

from devrag.server.outputs import DocumentPage, Freshness, Hit, SourcesOutput


def short(sha: str | None) -> str:
    return sha[:12] if sha else "unknown"


def citation(hit: Hit) -> str:
    crumb = " > ".join(hit.headings) or hit.path
    return (
        f"[{hit.rank}] {hit.repo}:{hit.path}#L{hit.start_line}-L{hit.end_line} @ {short(hit.commit)}"
        f" | {crumb} | {hit.doc_type} | score {hit.score:.3f}"
    )


def _get_document_call(repo: str, path: str, section: str | None = None, offset: int | None = None) -> str:
    """The call that reads more; strings are JSON-quoted so a quote in a heading keeps it valid."""
    args = [f"repo={json.dumps(repo)}", f"path={json.dumps(path)}"]
    if section:
        args.append(f"section={json.dumps(section)}")
    if offset:
        args.append(f"offset={offset}")
    return f"get_document({', '.join(args)})"


def hit_block(hit: Hit) -> str:
    lines = [citation(hit)]
    if hit.text:
        lines.append(hit.text)
    if hit.truncated:
        section = hit.headings[-1] if len(hit.headings) > 1 else None
        what = "cut" if hit.text else "passage left out"
        lines.append(
            f"[{what} to fit max_tokens ({hit.tokens_cut} tokens not shown); "
            f"{_get_document_call(hit.repo, hit.path, section)} returns it whole]"
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
    hits: list[Hit], left_out: int, freshness: list[Freshness], notes: list[str], max_tokens: int
) -> str:
    parts = [hit_block(h) for h in hits]
    if not hits and not left_out:
        parts.append("No results.")
    tail = [freshness_line(f) for f in freshness]
    if left_out:
        tail.append(
            f"{left_out} more result{'s' if left_out != 1 else ''} left out to fit max_tokens={max_tokens}: "
            "raise max_tokens to see them."
        )
    tail.extend(notes)
    if tail:
        parts.append("\n".join(tail))
    return "\n\n".join(parts)


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
    if cut:
        foot.append(f"[line {page.start_line} cut to fit max_tokens]")
    if read < page.total_lines:
        call = _get_document_call(page.repo, page.path, page.section, read)
        foot.append(f"[The document continues: call {call} for the next page.]")
    return "\n".join([head, body, *foot]) if foot else f"{head}\n{body}"


def sources_text(out: SourcesOutput) -> str:
    lines = [
        f"Index {out.store}: embedding model {out.embed_model}, reranker {out.rerank_model} "
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
            f"{r.chunks} chunks ({types}); {r.path}"
        )
    return "\n".join(lines)
