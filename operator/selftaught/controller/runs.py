"""What the operator remembers about each run between events, and which runs are gone for good.

One :class:`RunRecord` per run key holds everything the handlers keep (uid, last generation,
the watched copy, when to relist); :class:`RunBook` adds and removes records in one place, so a
deleted run cannot leave a stale entry in some forgotten dict.

:class:`Tombstones` are the uids of runs whose deletion was observed (a DELETED event, or a
``deletionTimestamp``). Deletion is final (docs/DESIGN.md): a reconcile that was queued, or
that planned from a cached copy before the deletion arrived, must not create anything for such
a run. Keyed by uid, not by name: a run created again under the same name is a new run.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]


@dataclass
class RunRecord:
    """One run as the handlers know it."""

    uid: str
    #: ``metadata.generation`` last enqueued for (a change means a new or edited spec).
    generation: int | None = None
    #: The run as its watch last delivered it (a copy: kopf reuses its body objects).
    watched: dict[str, Any] | None = None
    #: When a routine reconcile lists the run's children from the API next (monotonic s).
    relist_due: float | None = None


class RunBook:
    """Records by key, and the key of each uid (children carry their run's uid label)."""

    def __init__(self) -> None:
        self._by_key: dict[Key, RunRecord] = {}
        self._keys: dict[str, Key] = {}

    def get(self, key: Key) -> RunRecord | None:
        return self._by_key.get(key)

    def key_of(self, uid: str) -> Key | None:
        return self._keys.get(uid)

    def track(self, key: Key, uid: str) -> RunRecord:
        """The record of ``key``; a new one when the run under that name is a new object."""
        record = self._by_key.get(key)
        if record is None or record.uid != uid:
            if record is not None:
                self._keys.pop(record.uid, None)
            record = self._by_key[key] = RunRecord(uid)
            self._keys[uid] = key
        return record

    def drop(self, key: Key) -> RunRecord | None:
        """Forget ``key`` entirely; the record it had, if any."""
        record = self._by_key.pop(key, None)
        if record is not None:
            self._keys.pop(record.uid, None)
        return record

    def __len__(self) -> int:
        return len(self._by_key)


class Tombstones:
    """Uids of deleted (or deleting) runs; read from reconcile threads, so it locks.

    Bounded: a tombstone only has to outlive the reconciles and watch events already in flight
    when the deletion arrived (seconds), so the oldest go first past ``capacity`` entries.
    """

    def __init__(self, capacity: int = 10_000) -> None:
        self.capacity = capacity
        self._uids: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def bury(self, uid: str) -> None:
        if not uid:
            return
        with self._lock:
            self._uids[uid] = None
            self._uids.move_to_end(uid)
            while len(self._uids) > self.capacity:
                self._uids.popitem(last=False)

    def __contains__(self, uid: object) -> bool:
        with self._lock:
            return uid in self._uids

    def __len__(self) -> int:
        with self._lock:
            return len(self._uids)
