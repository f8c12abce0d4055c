"""Model resolution: from the URI in a spec to a local directory a engine can load.

* ``file:///path`` is used in place (it must hold ``config.json``); ``file:///path/x.gguf`` is
  converted once into a plain directory in the cache (:mod:`selftaught.storage.gguf`).
* ``s3://bucket/prefix`` is a committed output (or a directory inside one, as the train stage
  writes ``.../train/model``): it is downloaded once into the cache, keyed by the URI, under a
  lock file so that shards sharing a cache volume download it once, and verified against the
  commit manifest.
* Other schemes go through a registry; ``builtin://`` imports :mod:`selftaught.tiny` lazily,
  which registers the project's tiny models on import.
* A plain name (``org/model``) must already be in the cache, as a plain directory or in the
  Hugging Face hub layout: workers never download from a hub (air-gapped clusters, and the
  operator's tests run without network).
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlparse

from selftaught.api import S3Settings
from selftaught.storage import gguf
from selftaught.storage.errors import StorageError, StorageNotFound, UncommittedError
from selftaught.storage.local import path_from_uri
from selftaught.storage.retry import RetryPolicy
from selftaught.storage.s3 import S3Storage, split_s3_uri

Resolver = Callable[[str, Path], Path]

_RESOLVERS: dict[str, Resolver] = {}
#: Modules imported on first use of a scheme that has no resolver yet.
_LAZY_MODULES = {"builtin": "selftaught.tiny"}
#: How long to wait for another process that holds the download lock, seconds.
LOCK_TIMEOUT = 3600.0


class ModelNotFound(StorageNotFound):
    """The model URI or name does not lead to a loadable model directory."""


def register_model_resolver(scheme: str, fn: Resolver) -> None:
    """Resolve ``<scheme>://...`` URIs with ``fn(uri, cache_dir) -> local model directory``."""
    _RESOLVERS[scheme] = fn


def materialize_model(
    uri: str,
    cache_dir: Path,
    *,
    s3: S3Settings | None = None,
    retry: RetryPolicy | None = None,
) -> Path:
    """A local directory holding the model ``uri`` (see the module docstring for the rules).

    ``s3`` gives the endpoint, region and addressing of an S3-compatible store (the run's
    ``storage.s3``); credentials come from the environment.
    """
    scheme = urlparse(uri).scheme
    cache = Path(cache_dir)
    if scheme == "file":
        path = path_from_uri(uri)
        if gguf.is_gguf(path):
            return _checked(gguf.to_hf_directory(path, cache), uri)
        return _checked(path, uri)
    if scheme == "s3":
        return _from_s3(uri, cache, s3 or S3Settings(), retry)
    if scheme:
        if scheme not in _RESOLVERS and scheme in _LAZY_MODULES:
            importlib.import_module(_LAZY_MODULES[scheme])
        if scheme not in _RESOLVERS:
            raise ModelNotFound(f"no resolver for model URI scheme '{scheme}://' ({uri})", uri=uri)
        return _checked(_RESOLVERS[scheme](uri, cache), uri)
    return _from_cache(uri, cache)


def _checked(path: Path, uri: str) -> Path:
    if not path.is_dir():
        raise ModelNotFound(f"model {uri}: {path} is not a directory", uri=uri)
    if not (path / "config.json").is_file():
        raise ModelNotFound(
            f"model {uri}: {path} holds no config.json (want a Hugging Face model directory)",
            uri=uri,
        )
    return path


def _from_cache(name: str, cache: Path) -> Path:
    """A plain name found in the cache: ``<cache>/<name>`` or the hub's snapshot layout."""
    plain = cache / name
    if (plain / "config.json").is_file():
        return plain
    folder = "models--" + name.replace("/", "--")
    for hub in (cache / folder, cache / "hub" / folder):
        snapshot = _hub_snapshot(hub)
        if snapshot is not None:
            return snapshot
    raise ModelNotFound(
        f"model '{name}' is not in the model cache {cache} (workers never download from a hub): "
        "put it on the cache volume, or use an s3:// or file:// URI",
        uri=name,
    )


def _hub_snapshot(hub: Path) -> Path | None:
    ref = hub / "refs" / "main"
    if ref.is_file():
        candidate = hub / "snapshots" / ref.read_text().strip()
        if (candidate / "config.json").is_file():
            return candidate
    snapshots = hub / "snapshots"
    if snapshots.is_dir():
        found = [p for p in snapshots.iterdir() if (p / "config.json").is_file()]
        if found:
            return max(found, key=lambda p: p.stat().st_mtime)
    return None


def _from_s3(uri: str, cache: Path, settings: S3Settings, retry: RetryPolicy | None) -> Path:
    bucket, key = split_s3_uri(uri)
    digest = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16]
    final = cache / "s3" / f"{digest}-{Path(key).name or bucket}"
    if (final / "config.json").is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with _Locked(final.with_name(final.name + ".lock")):
        if (final / "config.json").is_file():  # another process finished while we waited
            return final
        parent, _, leaf = key.rpartition("/")
        store = S3Storage(
            f"s3://{bucket}",
            endpoint=settings.endpoint,
            region=settings.region,
            addressing_style=settings.addressing_style,
            retry=retry,
        )
        partial = final.with_name(f"{final.name}.partial-{uuid.uuid4().hex[:8]}")
        try:
            if store.is_committed(key):
                store.download_committed(key, partial)
            elif leaf and store.is_committed(parent):
                store.download_committed(parent, partial, under=leaf)
            else:
                raise UncommittedError(
                    f"model {uri} is not a committed output (no commit marker at it or its "
                    "parent): the train stage that writes it has not finished",
                    uri=uri,
                )
            _checked(partial, uri)
            if final.exists():
                shutil.rmtree(final)
            partial.rename(final)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
    return final


class _Locked:
    """An exclusive ``flock`` on a file, waited for at most :data:`LOCK_TIMEOUT` seconds."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.handle = path.open("a+")

    def __enter__(self) -> None:
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    self.handle.close()
                    raise StorageError(
                        f"timed out waiting for {self.path} (another download of this model)"
                    ) from None
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
