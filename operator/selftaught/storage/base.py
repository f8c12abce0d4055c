"""The storage interface every stage writes through, and what all backends share.

A backend implements a handful of key-level primitives (read, write, list, delete, size, and how
to stage a committed output); everything built from them lives here once: JSONL with per-line
errors, directory uploads, and the atomic-commit protocol.

Keys are relative to the storage root and use ``/``. Prefixes are directories: ``list("a/b")``
and ``delete_prefix("a/b")`` touch ``a/b/...`` and never ``a/bc``, so shard 1 cannot delete
shard 10.

**Commit protocol.** ``with storage.output(prefix) as out:`` removes whatever an earlier attempt
left under ``prefix`` (marker first), lets the block write files, and on a clean exit writes
:data:`selftaught.artifacts.COMMIT_MARKER` last: a JSON manifest of every file and its size.
Readers of committed data check the marker and the sizes, so a half-written or truncated output
is never mistaken for a finished one. On file:// the block writes into a staging directory that
is renamed into place, so even the file set appears at once.
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from selftaught.artifacts import COMMIT_MARKER
from selftaught.storage.errors import StorageCorrupt, StorageNotFound, UncommittedError

#: Manifest format version, so a later layout can be told apart.
MANIFEST_VERSION = 1


def join_key(prefix: str, name: str) -> str:
    """``prefix/name`` with exactly one slash, tolerating empty parts."""
    head, tail = prefix.strip("/"), name.strip("/")
    if not head:
        return tail
    return f"{head}/{tail}" if tail else head


def encode_jsonl(rows: Iterable[Any]) -> tuple[bytes, int]:
    """JSON Lines bytes (UTF-8, one object per line) and the row count."""
    lines = [json.dumps(row, ensure_ascii=False, separators=(",", ":")) for row in rows]
    body = "".join(line + "\n" for line in lines)
    return body.encode("utf-8"), len(lines)


def decode_jsonl(lines: Iterable[bytes]) -> Iterator[tuple[int, Any]]:
    """``(line_no, object)`` per non-blank line; a bad line yields the exception, not a crash.

    Line numbers are 1-based, as a user counts them in an editor, so "bad line 17" can be found.
    """
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            yield number, json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            yield number, ValueError(f"line {number}: {error}")


class Storage(ABC):
    """Artifact storage rooted at one URI (``file:///...``, ``s3://bucket/prefix``, memory)."""

    # ------------------------------------------------------------------ backend primitives

    @abstractmethod
    def uri_for(self, key: str) -> str:
        """The absolute URI of ``key`` (what the status and error messages show)."""

    @abstractmethod
    def exists(self, key: str) -> bool:
        """Whether an object (a file, not a prefix) exists at ``key``."""

    @abstractmethod
    def read_bytes(self, key: str) -> bytes:
        """The whole object; :class:`StorageNotFound` if absent."""

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None:
        """Create or replace the object at ``key``."""

    @abstractmethod
    def size(self, key: str) -> int:
        """Size in bytes of the object at ``key``; :class:`StorageNotFound` if absent."""

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key under the directory ``prefix``, recursively, sorted."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> None:
        """Remove every key under the directory ``prefix`` (no error if there is none)."""

    def upload_file(self, local_path: Path, key: str) -> None:
        """Copy one local file to ``key``. Backends override this to stream big files."""
        self.write_bytes(key, Path(local_path).read_bytes())

    def download_file(self, key: str, local_path: Path) -> None:
        """Copy the object at ``key`` to a local file (parents created)."""
        target = Path(local_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(self.read_bytes(key))

    def iter_lines(self, key: str) -> Iterator[bytes]:
        """The object's lines (without newlines). File storage streams; others read it whole."""
        yield from self.read_bytes(key).split(b"\n")

    def begin_output(self, prefix: str) -> str:
        """Prepare a commit of ``prefix``; return the key under which the block writes.

        Object stores write in place: the old marker goes first (so the prefix stops counting as
        committed at once), then every stale file of an earlier attempt.
        """
        self.delete_prefix(join_key(prefix, COMMIT_MARKER))
        self.delete_prefix(prefix)
        return prefix

    def finish_output(self, prefix: str, staging: str) -> None:  # noqa: B027 (optional hook)
        """Make a staged output visible at ``prefix`` (after its marker was written)."""

    def abort_output(self, prefix: str, staging: str) -> None:  # noqa: B027 (optional hook)
        """The block failed: leave ``prefix`` uncommitted. Partial files stay until a re-run."""

    # ------------------------------------------------------------------ built on top

    def write_jsonl(self, key: str, rows: Iterable[Any]) -> int:
        """Write rows as JSON Lines; return how many were written."""
        data, count = encode_jsonl(rows)
        self.write_bytes(key, data)
        return count

    def read_jsonl(self, key: str) -> Iterator[tuple[int, Any]]:
        """``(line_no, obj_or_error)`` per non-blank line (see :func:`decode_jsonl`)."""
        return decode_jsonl(self.iter_lines(key))

    def upload_dir(self, local_dir: Path, key: str) -> dict[str, int]:
        """Upload every file under ``local_dir`` to ``key/...``; return ``{name: size}``."""
        root = Path(local_dir)
        if not root.is_dir():
            raise StorageNotFound(f"cannot upload {root}: not a directory", uri=str(root))
        sizes: dict[str, int] = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            name = path.relative_to(root).as_posix()
            self.upload_file(path, join_key(key, name))
            sizes[name] = path.stat().st_size
        return sizes

    def download_dir(self, key: str, local_dir: Path) -> Path:
        """Download every object under ``key/`` into ``local_dir``, keeping relative paths."""
        target = Path(local_dir)
        base = key.strip("/")
        keys = self.list(base)
        if not keys:
            uri = self.uri_for(base)
            raise StorageNotFound(f"nothing stored under {uri}", uri=uri)
        for full in keys:
            relative = full[len(base) :].lstrip("/") if base else full
            self.download_file(full, target / relative)
        return target

    @contextmanager
    def output(self, prefix: str) -> Iterator[OutputWriter]:
        """Write a stage's output under ``prefix`` and commit it when the block exits cleanly."""
        if not prefix.strip("/"):
            raise ValueError("an output needs a non-empty prefix (it replaces what is under it)")
        staging = self.begin_output(prefix)
        writer = OutputWriter(self, staging)
        try:
            yield writer
        except BaseException:
            self.abort_output(prefix, staging)
            raise
        manifest = {
            "version": MANIFEST_VERSION,
            "committedAt": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": dict(sorted(writer.files.items())),
        }
        self.write_bytes(join_key(staging, COMMIT_MARKER), json.dumps(manifest).encode())
        self.finish_output(prefix, staging)

    def is_committed(self, prefix: str) -> bool:
        """Whether ``prefix`` carries a commit marker (its content is not verified here)."""
        return self.exists(join_key(prefix, COMMIT_MARKER))

    def manifest(self, prefix: str) -> dict[str, int]:
        """The committed file list ``{name: size}`` of ``prefix``.

        Raises :class:`UncommittedError` when there is no marker and :class:`StorageCorrupt` when
        the marker is not a manifest.
        """
        marker = join_key(prefix, COMMIT_MARKER)
        if not self.exists(marker):
            raise UncommittedError(
                f"{self.uri_for(prefix)} is not committed (no {COMMIT_MARKER}): the stage that "
                "writes it has not finished, or failed; re-run that stage",
                uri=self.uri_for(prefix),
            )
        raw = self.read_bytes(marker)
        try:
            files = json.loads(raw)["files"]
            if not isinstance(files, dict):
                raise TypeError("'files' is not an object")
            return {str(name): int(size) for name, size in files.items()}
        except (ValueError, KeyError, TypeError) as error:
            raise StorageCorrupt(
                f"bad commit manifest at {self.uri_for(marker)}: {error}", uri=self.uri_for(marker)
            ) from error

    def verify(self, prefix: str) -> dict[str, int]:
        """The manifest of ``prefix`` after checking that every file exists with its size."""
        files = self.manifest(prefix)
        for name, expected in files.items():
            key = join_key(prefix, name)
            try:
                actual = self.size(key)
            except StorageNotFound as error:
                raise StorageCorrupt(
                    f"committed file {self.uri_for(key)} is missing", uri=self.uri_for(key)
                ) from error
            _check_size(self.uri_for(key), expected, actual)
        return files

    def read_committed_bytes(self, prefix: str, name: str) -> bytes:
        """One file of a committed output, checked against the manifest's size."""
        files = self.manifest(prefix)
        key = join_key(prefix, name)
        if name not in files:
            raise StorageNotFound(
                f"{self.uri_for(key)} is not part of the committed output {self.uri_for(prefix)} "
                f"(it has: {', '.join(sorted(files)) or 'no files'})",
                uri=self.uri_for(key),
            )
        try:
            data = self.read_bytes(key)
        except StorageNotFound as error:
            raise StorageCorrupt(
                f"committed file {self.uri_for(key)} is missing", uri=self.uri_for(key)
            ) from error
        _check_size(self.uri_for(key), files[name], len(data))
        return data

    def read_committed_jsonl(self, prefix: str, name: str) -> Iterator[tuple[int, Any]]:
        """JSONL of a committed output after the marker and size checks (as :meth:`read_jsonl`)."""
        data = self.read_committed_bytes(prefix, name)
        return decode_jsonl(data.split(b"\n"))

    def download_committed(self, prefix: str, local_dir: Path, *, under: str = "") -> Path:
        """Download a committed output (or its files under ``under/``), verifying every size."""
        files = self.manifest(prefix)
        base = under.strip("/")
        chosen = {n: s for n, s in files.items() if not base or n.startswith(base + "/")}
        if not chosen:
            raise StorageNotFound(
                f"committed output {self.uri_for(prefix)} has no files under '{base}'",
                uri=self.uri_for(join_key(prefix, base)),
            )
        target = Path(local_dir)
        for name, expected in chosen.items():
            local = target / (name[len(base) + 1 :] if base else name)
            self.download_file(join_key(prefix, name), local)
            _check_size(self.uri_for(join_key(prefix, name)), expected, local.stat().st_size)
        return target


def _check_size(uri: str, expected: int, actual: int) -> None:
    if expected != actual:
        raise StorageCorrupt(
            f"{uri} has {actual} bytes but its commit manifest says {expected}: the artifact is "
            "truncated or was overwritten; re-run the stage that wrote it (spec.resumeFrom)",
            uri=uri,
        )


class OutputWriter:
    """What the ``with storage.output(prefix)`` block writes through; it records every file.

    Names are relative to the output's prefix; the manifest lists them with their sizes.
    """

    def __init__(self, storage: Storage, staging: str) -> None:
        self._storage = storage
        self._staging = staging
        self.files: dict[str, int] = {}

    def _key(self, name: str) -> str:
        clean = name.strip("/")
        if not clean or clean == COMMIT_MARKER or ".." in clean.split("/"):
            raise ValueError(f"invalid output file name {name!r}")
        return join_key(self._staging, clean)

    def write_bytes(self, name: str, data: bytes) -> None:
        self._storage.write_bytes(self._key(name), data)
        self.files[name.strip("/")] = len(data)

    def write_jsonl(self, name: str, rows: Iterable[Any]) -> int:
        data, count = encode_jsonl(rows)
        self.write_bytes(name, data)
        return count

    def upload_dir(self, local_dir: Path, name: str) -> dict[str, int]:
        sizes = self._storage.upload_dir(Path(local_dir), self._key(name))
        base = name.strip("/")
        self.files.update({f"{base}/{rel}": size for rel, size in sizes.items()})
        return sizes

    def upload_file(self, local_path: Path, name: str) -> None:
        self._storage.upload_file(Path(local_path), self._key(name))
        self.files[name.strip("/")] = os.path.getsize(local_path)
