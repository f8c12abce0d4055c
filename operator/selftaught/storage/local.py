"""``file:///abs/path`` storage: a PersistentVolumeClaim on a cluster, a local disk elsewhere.

Single files are written to a temporary name and renamed, so a reader never sees half a file.
A committed output is built in a staging directory under the root (same filesystem, so the
rename is atomic) and renamed into place; a previous attempt's directory is moved aside first and
removed after, which is why a re-run replaces an output instead of adding to it.
"""

from __future__ import annotations

import errno
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

from selftaught.storage.base import Storage, join_key
from selftaught.storage.errors import StorageAuthError, StorageError, StorageNotFound

#: Directory under the root where outputs are staged; never listed.
STAGING_DIR = ".selftaught-staging"


def path_from_uri(uri: str) -> Path:
    """The absolute path of a ``file://`` URI (``file:///a/b`` -> ``/a/b``)."""
    parsed = urlparse(uri)
    if parsed.scheme != "file" or parsed.netloc not in ("", "localhost"):
        raise ValueError(f"not a local file URI (want file:///absolute/path): {uri}")
    path = unquote(parsed.path)
    if not path.startswith("/"):
        raise ValueError(f"file URI must hold an absolute path: {uri}")
    return Path(path)


class FileStorage(Storage):
    """Artifacts as files under one root directory."""

    def __init__(self, root: Path | str) -> None:
        self.root = path_from_uri(str(root)) if str(root).startswith("file:") else Path(root)
        if not self.root.is_absolute():
            raise ValueError(f"file storage root must be absolute: {self.root}")

    def uri_for(self, key: str) -> str:
        return join_key(f"file://{self.root}", key.strip("/"))

    def _path(self, key: str) -> Path:
        clean = key.strip("/")
        if ".." in clean.split("/"):
            raise StorageError(f"key escapes the storage root: {key!r}", uri=self.uri_for(key))
        return self.root / clean if clean else self.root

    @contextmanager
    def _errors(self, key: str) -> Iterator[None]:
        """Turn OS errors into the storage family, naming the URI and what to check."""
        uri = self.uri_for(key)
        try:
            yield
        except FileNotFoundError as error:
            raise StorageNotFound(
                f"no file at {uri} (check storage.uri and that the volume is mounted)", uri=uri
            ) from error
        except PermissionError as error:
            raise StorageAuthError(
                f"permission denied at {uri} (check the volume's ownership, e.g. the pod's "
                f"fsGroup): {error}",
                uri=uri,
            ) from error
        except IsADirectoryError as error:
            raise StorageNotFound(f"{uri} is a directory, not a file", uri=uri) from error
        except OSError as error:
            hint = " (the volume is full)" if error.errno == errno.ENOSPC else ""
            raise StorageError(f"cannot access {uri}{hint}: {error}", uri=uri) from error

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def read_bytes(self, key: str) -> bytes:
        with self._errors(key):
            return self._path(key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        with self._errors(key):
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
            try:
                partial.write_bytes(data)
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)

    def upload_file(self, local_path: Path, key: str) -> None:
        path = self._path(key)
        with self._errors(key):
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
            try:
                shutil.copyfile(local_path, partial)
                os.replace(partial, path)
            finally:
                partial.unlink(missing_ok=True)

    def download_file(self, key: str, local_path: Path) -> None:
        with self._errors(key):
            Path(local_path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self._path(key), local_path)

    def size(self, key: str) -> int:
        with self._errors(key):
            path = self._path(key)
            if not path.is_file():
                raise FileNotFoundError(path)
            return path.stat().st_size

    def iter_lines(self, key: str) -> Iterator[bytes]:
        """Stream the file line by line: datasets can be larger than a worker's memory."""
        with self._errors(key), self._path(key).open("rb") as handle:
            for line in handle:
                yield line.rstrip(b"\n")

    def list(self, prefix: str = "") -> list[str]:
        base = self._path(prefix)
        if base.is_file():
            return [prefix.strip("/")]
        if not base.is_dir():
            return []
        keys = []
        for path in base.rglob("*"):
            relative = path.relative_to(self.root).as_posix()
            staged = relative.startswith(STAGING_DIR + "/") or path.name.endswith(".part")
            if path.is_file() and not staged:
                keys.append(relative)
        return sorted(keys)

    def delete_prefix(self, prefix: str) -> None:
        path = self._path(prefix)
        with self._errors(prefix):
            if path == self.root:
                for child in path.iterdir() if path.is_dir() else []:
                    _remove(child)
            elif path.exists() or path.is_symlink():
                _remove(path)

    # ---------------------------------------------------------------- commit by rename

    def begin_output(self, prefix: str) -> str:
        staging = f"{STAGING_DIR}/{uuid.uuid4().hex}"
        with self._errors(staging):
            self._path(staging).mkdir(parents=True)
        return staging

    def finish_output(self, prefix: str, staging: str) -> None:
        target = self._path(prefix)
        with self._errors(prefix):
            target.parent.mkdir(parents=True, exist_ok=True)
            old = self._path(f"{STAGING_DIR}/{uuid.uuid4().hex}-replaced")
            if target.exists():
                os.rename(target, old)
            os.rename(self._path(staging), target)
            if old.exists():
                shutil.rmtree(old)

    def abort_output(self, prefix: str, staging: str) -> None:
        shutil.rmtree(self._path(staging), ignore_errors=True)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
