"""An in-memory store: the fake that unit tests inject instead of patching boto3.

It follows the same contract as the real backends (directory-like prefixes, the object-store
commit protocol), so a stage tested against it behaves the same on S3.
"""

from __future__ import annotations

import threading

from selftaught.storage.base import Storage, join_key
from selftaught.storage.errors import StorageNotFound


class MemoryStorage(Storage):
    """Objects in a dict, keyed by relative key; safe to share between threads."""

    def __init__(self, name: str = "test") -> None:
        self.name = name
        self.objects: dict[str, bytes] = {}
        self._lock = threading.Lock()

    def uri_for(self, key: str) -> str:
        return join_key(f"memory://{self.name}", key.strip("/"))

    def exists(self, key: str) -> bool:
        with self._lock:
            return key.strip("/") in self.objects

    def read_bytes(self, key: str) -> bytes:
        with self._lock:
            try:
                return self.objects[key.strip("/")]
            except KeyError:
                uri = self.uri_for(key)
                raise StorageNotFound(f"no object at {uri}", uri=uri) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._lock:
            self.objects[key.strip("/")] = bytes(data)

    def size(self, key: str) -> int:
        return len(self.read_bytes(key))

    def list(self, prefix: str = "") -> list[str]:
        base = prefix.strip("/")
        with self._lock:
            if not base:
                return sorted(self.objects)
            return sorted(k for k in self.objects if k == base or k.startswith(base + "/"))

    def delete_prefix(self, prefix: str) -> None:
        doomed = self.list(prefix)
        with self._lock:
            for key in doomed:
                self.objects.pop(key, None)
