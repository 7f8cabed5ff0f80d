"""Errors that library code raises; entry points turn them into messages for people or agents."""

from __future__ import annotations


class DevragError(Exception):
    """A failure the user can act on; its message says what to do next."""


class IndexBusyError(DevragError):
    """Another process holds the index."""


class IndexMismatchError(DevragError):
    """The index was built with another embedding model or chunker."""


class IndexWriteError(DevragError):
    """A write could not be verified by reading it back."""


class ModelLoadError(DevragError):
    """A model could not be loaded."""


class OwnerUnavailableError(DevragError):
    """The process that owns the embedded index could not be reached or started."""
