"""The one family of storage errors, sorted by what the caller should do about them.

A worker maps each class to an exit code (see ``selftaught.worker``), so the class, not the
message, carries the decision: retry later (:class:`StorageUnavailable`), fix the manifest or the
credentials (:class:`StorageNotFound`, :class:`StorageAuthError`), or regenerate the upstream
artifact (:class:`StorageCorrupt`). Messages always name the URI and what to check, because they
end up verbatim in a condition that a user reads with ``kubectl describe``.
"""

from __future__ import annotations


class StorageError(Exception):
    """Base class: something went wrong reading or writing an artifact."""

    def __init__(self, message: str, *, uri: str | None = None) -> None:
        super().__init__(message)
        self.uri = uri


class StorageNotFound(StorageError):
    """The key, prefix, bucket or model does not exist (or was never committed)."""


class StorageAuthError(StorageError):
    """The store refused the credentials (wrong key, wrong secret, or no permission)."""


class StorageUnavailable(StorageError):
    """A transient fault: endpoint unreachable, 5xx, throttling. Retrying may succeed."""


class StorageCorrupt(StorageError):
    """Committed data does not match its manifest (truncated, missing file, bad manifest)."""


class UncommittedError(StorageNotFound):
    """A reader asked for the output of a prefix that has no commit marker.

    A subclass of :class:`StorageNotFound` because for the reader the data is simply not there
    yet: the stage that writes it did not finish (or is still running).
    """
