"""Path globs with one meaning everywhere: search filters and the files an ingest selects."""

from __future__ import annotations

from fnmatch import fnmatchcase


def path_matches(pattern: str, path: str) -> bool:
    """Whether `path` (relative to the repository root) matches the glob, or lies in a folder it names.

    `*` crosses folders, as in fnmatch. A folder is named by a glob that ends in `/` (`runbooks/`)
    or by its plain path (`runbooks`), and holds everything under it: a path in the index is always
    a file's, so without this rule a folder matched nothing, and callers reach for folders first.
    """
    return fnmatchcase(path, pattern) or fnmatchcase(path, pattern.rstrip("/") + "/*")
