"""The three PATCH content types the API server accepts, as pure functions on dicts.

* ``application/merge-patch+json`` (RFC 7386): objects merge recursively, ``null`` deletes,
  everything else (lists included) replaces.
* ``application/json-patch+json`` (RFC 6902): ``add``, ``remove``, ``replace``, ``move``,
  ``copy`` and ``test``. kopf starts its finalizer patches with a ``test`` of
  ``/metadata/resourceVersion``; a failing test must be a 422, not a 500.
* ``application/strategic-merge-patch+json``: treated as a merge patch, except that a few
  well-known keyed lists (containers, env, conditions, ...) merge by their key instead of being
  replaced, which is what kubectl relies on for built-in kinds.
"""

from __future__ import annotations

import copy
from typing import Any

MERGE = "application/merge-patch+json"
JSON = "application/json-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
APPLY = "application/apply-patch+yaml"

#: Lists that a strategic merge patch merges by a key field, per list name.
_STRATEGIC_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "conditions": "type",
    "ownerReferences": "uid",
    "tolerations": "key",
}


class PatchError(ValueError):
    """A patch that cannot apply: ``status`` is the HTTP code the server answers with."""

    def __init__(self, message: str, *, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


def merge_patch(target: Any, patch: Any, *, strategic: bool = False) -> Any:
    """Apply an RFC 7386 merge patch (or its strategic variant) and return the new document."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):  # strategic directives ($patch, $retainKeys): ignored
            continue
        if value is None:
            result.pop(key, None)
        elif strategic and key in _STRATEGIC_KEYS and isinstance(value, list):
            result[key] = _merge_keyed(result.get(key), value, _STRATEGIC_KEYS[key])
        else:
            result[key] = merge_patch(result.get(key), value, strategic=strategic)
    return result


def _merge_keyed(current: Any, patch: list[Any], key: str) -> list[Any]:
    if not isinstance(current, list) or not all(isinstance(i, dict) and key in i for i in patch):
        return copy.deepcopy(patch)
    merged = copy.deepcopy(current)
    for item in patch:
        for index, existing in enumerate(merged):
            if isinstance(existing, dict) and existing.get(key) == item[key]:
                if item.get("$patch") == "delete":
                    merged.pop(index)
                else:
                    merged[index] = merge_patch(existing, item, strategic=True)
                break
        else:
            if item.get("$patch") != "delete":
                merged.append(copy.deepcopy(item))
    return merged


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"invalid JSON pointer: {path!r}", status=422)
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, parts: list[str], path: str) -> Any:
    node = doc
    for part in parts[:-1]:
        try:
            node = node[int(part)] if isinstance(node, list) else node[part]
        except (KeyError, IndexError, ValueError, TypeError):
            raise PatchError(f"doc is missing path: {path!r}") from None
    return node


def _get(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    if not parts:
        return doc
    parent = _parent(doc, parts, path)
    try:
        return parent[int(parts[-1])] if isinstance(parent, list) else parent[parts[-1]]
    except (KeyError, IndexError, ValueError, TypeError):
        raise PatchError(f"doc is missing path: {path!r}") from None


def _remove(doc: Any, path: str) -> Any:
    parts = _pointer(path)
    parent = _parent(doc, parts, path)
    try:
        if isinstance(parent, list):
            return parent.pop(int(parts[-1]))
        return parent.pop(parts[-1])
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        raise PatchError(f"doc is missing path: {path!r}") from None


def _add(doc: Any, path: str, value: Any, *, replace: bool) -> Any:
    parts = _pointer(path)
    if not parts:
        return value
    parent = _parent(doc, parts, path)
    leaf = parts[-1]
    if isinstance(parent, list):
        if leaf == "-" and not replace:
            parent.append(value)
            return doc
        try:
            index = int(leaf)
        except ValueError:
            raise PatchError(f"invalid array index: {leaf!r}") from None
        if not 0 <= index <= len(parent) - (1 if replace else 0):
            raise PatchError(f"array index out of range: {path!r}")
        if replace:
            parent[index] = value
        else:
            parent.insert(index, value)
    elif isinstance(parent, dict):
        if replace and leaf not in parent:
            raise PatchError(f"replace operation does not apply: doc is missing key: {path}")
        parent[leaf] = value
    else:
        raise PatchError(f"doc is missing path: {path!r}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """Apply an RFC 6902 JSON patch and return the new document (the input stays untouched)."""
    if not isinstance(operations, list):
        raise PatchError("json patch must be a list of operations", status=400)
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"invalid json patch operation: {op!r}", status=400)
        kind, path = op["op"], op["path"]
        if kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"testing value {path} failed")
        elif kind == "add":
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=False)
        elif kind == "replace":
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind in ("move", "copy"):
            value = (
                _remove(doc, op["from"]) if kind == "move" else copy.deepcopy(_get(doc, op["from"]))
            )
            doc = _add(doc, path, value, replace=False)
        else:
            raise PatchError(f"unknown json patch operation: {kind!r}", status=400)
    return doc


def apply_patch(target: dict[str, Any], body: Any, content_type: str) -> dict[str, Any]:
    """Dispatch on the request's content type, as the API server's PATCH handler does."""
    kind = content_type.split(";")[0].strip().lower()
    if kind == JSON:
        result = json_patch(target, body)
    elif kind in (MERGE, "application/json"):
        result = merge_patch(target, body)
    elif kind == STRATEGIC:
        result = merge_patch(target, body, strategic=True)
    elif kind == APPLY:
        raise PatchError("server-side apply is handled by tests/harness/apply.py", status=415)
    else:
        raise PatchError(f"the body of the request was in an unknown format: {kind}", status=415)
    if not isinstance(result, dict):
        raise PatchError("patch did not produce an object")
    return result
