"""Garbage collection of orphaned dependents, as kube-controller-manager's garbage collector does.

The store already cascades a delete to the owner's dependents (``Store._collect``). What that
misses is a dependent written *after* its owners are gone: an operator that creates a Job from a
stale copy of a deleted run, or an object applied with an ``ownerReferences`` uid that never
existed. The real garbage collector deletes a dependent once none of its owners exist (it checks
by uid, so a new owner with the same name does not adopt it); this does the same, at once, after
each create or apply, so a test sees the object vanish as it would on a cluster.
"""

from __future__ import annotations

import contextlib
from typing import Any

from tests.harness.resources import ResourceType
from tests.harness.store import ApiError, Store


def live_uids(store: Store) -> set[str]:
    return {o["metadata"].get("uid", "") for o in store.objects.values()}


def is_orphaned(obj: dict[str, Any], uids: set[str]) -> bool:
    """True when the object names owners and none of them exists (pure)."""
    refs = obj.get("metadata", {}).get("ownerReferences") or []
    return bool(refs) and not any(r.get("uid") in uids for r in refs)


def collect_if_orphaned(store: Store, rt: ResourceType, obj: dict[str, Any]) -> bool:
    """Delete ``obj`` (background propagation) if all its owners are gone; True if deleted."""
    meta = obj.get("metadata", {})
    if not meta.get("ownerReferences"):
        return False
    key = store.key(rt, meta.get("namespace", ""), meta.get("name", ""))
    stored = store.objects.get(key)
    if stored is None or stored["metadata"].get("uid") != meta.get("uid"):
        return False  # a dry run, or already gone
    if not is_orphaned(stored, live_uids(store)):
        return False
    with contextlib.suppress(ApiError):
        store.delete(rt, meta.get("namespace", ""), meta["name"], propagation="Background")
    return True
