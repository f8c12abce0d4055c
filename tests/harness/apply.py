"""Server-side apply (``PATCH`` with ``application/apply-patch+yaml``), as ``kubectl apply
--server-side`` sends it: the way large CRDs are installed, and what the docs show.

What is emulated: the PATCH creates the object when it does not exist (create-or-update);
otherwise the applied configuration is merged into the object (strategic keyed lists for
built-ins, atomic lists otherwise), and fields that the same ``fieldManager`` applied last time
but no longer applies are removed. Each manager's fields are kept in ``metadata.managedFields``
(``operation: Apply``, ``fieldsType: FieldsV1``; lists are atomic leaves), so ``kubectl get
--show-managed-fields`` shows who applied what.

Not emulated: conflicts between managers (every apply acts as ``--force-conflicts``), ownership
of fields written by Update operations, and per-item ownership inside lists.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.harness import patches
from tests.harness.resources import ResourceType
from tests.harness.store import ApiError, Store, now

#: Fields that identify an object rather than configure it: never owned, never removed.
_IDENTITY = {("apiVersion",), ("kind",), ("metadata",), ("metadata", "name")}
_IDENTITY |= {("metadata", "namespace"), ("metadata", "resourceVersion")}
_IDENTITY |= {("metadata", "managedFields"), ("status",)}


def field_paths(obj: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every path the configuration sets: dict keys recurse, anything else is a leaf."""
    paths: set[tuple[str, ...]] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            path = (*prefix, str(key))
            paths.add(path)
            paths |= field_paths(value, path)
    return paths - _IDENTITY


def to_fields_v1(paths: set[tuple[str, ...]]) -> dict[str, Any]:
    """Paths as Kubernetes' FieldsV1 trie: ``{"f:spec": {"f:iterations": {}}}``."""
    trie: dict[str, Any] = {}
    for path in sorted(paths):
        node = trie
        for part in path:
            node = node.setdefault(f"f:{part}", {})
    return trie


def from_fields_v1(trie: Any, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    paths: set[tuple[str, ...]] = set()
    if isinstance(trie, dict):
        for key, sub in trie.items():
            if key.startswith("f:"):
                path = (*prefix, key[2:])
                paths.add(path)
                paths |= from_fields_v1(sub, path)
    return paths


def _owned(obj: dict[str, Any], manager: str) -> set[tuple[str, ...]]:
    for entry in obj.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") == manager and entry.get("operation") == "Apply":
            return from_fields_v1(entry.get("fieldsV1")) - _IDENTITY
    return set()


def _remove(obj: dict[str, Any], path: tuple[str, ...]) -> None:
    node: Any = obj
    for part in path[:-1]:
        node = node.get(part) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(path[-1], None)


def _record(obj: dict[str, Any], manager: str, applied: dict[str, Any]) -> None:
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": applied.get("apiVersion", ""),
        "time": now(),
        "fieldsType": "FieldsV1",
        "fieldsV1": to_fields_v1(field_paths(applied)),
    }
    meta = obj.setdefault("metadata", {})
    others = [e for e in meta.get("managedFields") or [] if e.get("manager") != manager]
    meta["managedFields"] = [*others, entry]


def merge_applied(
    current: dict[str, Any], applied: dict[str, Any], *, manager: str, strategic: bool
) -> dict[str, Any]:
    """The object after ``manager`` applies ``applied`` to ``current`` (pure)."""
    merged: dict[str, Any] = patches.merge_patch(current, applied, strategic=strategic)
    still = field_paths(applied)
    for path in sorted(_owned(current, manager) - still, key=len):
        _remove(merged, path)  # no longer applied by its manager: the field goes
    _record(merged, manager, applied)
    return merged


def serve_apply(
    store: Store,
    rt: ResourceType,
    *,
    namespace: str,
    name: str,
    body: Any,
    query: Any,
    subresource: str | None,
) -> tuple[dict[str, Any], int]:
    """Handle one apply PATCH: (object, HTTP status) -- 201 when it created the object."""
    if not isinstance(body, dict):
        raise ApiError(400, "BadRequest", "the applied configuration must be an object")
    manager = query.get("fieldManager")
    if not manager:
        raise ApiError(
            422, "Invalid", 'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value'
        )
    meta = body.get("metadata") or {}
    if meta.get("name", name) != name:
        raise ApiError(
            400,
            "BadRequest",
            f"the name of the object ({meta.get('name')}) does not match the name on the URL"
            f" ({name})",
        )
    strict = query.get("fieldValidation") == "Strict"
    dry_run = query.get("dryRun") == "All"
    try:
        current = store.get(rt, namespace, name)
    except ApiError as exc:
        if exc.code != 404 or subresource:
            raise
        created = copy.deepcopy(body)
        created.setdefault("metadata", {})["name"] = name
        _record(created, manager, body)
        return store.create(rt, namespace, created, strict=strict, dry_run=dry_run), 201
    merged = merge_applied(current, body, manager=manager, strategic=rt.schema is None)
    if "resourceVersion" not in meta:
        merged["metadata"].pop("resourceVersion", None)
    updated = store.update(
        rt, namespace, name, merged, subresource=subresource, strict=strict, dry_run=dry_run
    )
    return updated, 200
