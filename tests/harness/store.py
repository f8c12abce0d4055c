"""The emulator's state: objects, the resourceVersion clock, watch history and the write rules.

Everything here runs on the emulator's event-loop thread only, so it needs no locks. Stored
objects are never mutated in place: every write stores a fresh dict, which lets the watch
history hold references instead of copies.

Rules kept from a real API server: one global increasing resourceVersion; ``generation`` bumps
only when something other than metadata and status changes; a no-op write changes nothing;
``/status`` writes touch only status and main writes never touch status (when the resource has
the subresource); deleting an object with finalizers only marks it; owner references cascade.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import secrets
import uuid
from collections import deque
from dataclasses import dataclass
from typing import Any

from selftaught.validation import FieldError
from tests.harness import builtin_defaults, objectmeta, schemas
from tests.harness.resources import Registry, ResourceType, types_from_crd

Key = tuple[str, str, str, str]  # group, plural, namespace ("" if cluster-scoped), name


class ApiError(Exception):
    """An error answered as a Kubernetes ``Status`` body."""

    def __init__(
        self, code: int, reason: str, message: str, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details or {}

    def status(self) -> dict[str, Any]:
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "details": self.details,
            "code": self.code,
        }


def _refuse(rt: ResourceType, meta: dict[str, Any], errors: list[FieldError]) -> None:
    """A 422 Invalid with one cause per error, worded as kube-apiserver words it."""
    if not errors:
        return
    texts = [str(e) for e in errors]
    shown = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    name = meta.get("name") or meta.get("generateName") or ""
    qualified = f"{rt.kind}.{rt.group}" if rt.group else rt.kind
    causes = [{"reason": e.reason, "message": e.message, "field": e.path} for e in errors]
    raise ApiError(
        422,
        "Invalid",
        f'{qualified} "{name}" is invalid: {shown}',
        {"name": name, "group": rt.group, "kind": rt.kind, "causes": causes},
    )


@dataclass(frozen=True)
class Event:
    """One change in the watch history. ``obj`` is the stored object (shared, never mutated)."""

    rv: int
    type: str
    group: str
    plural: str
    namespace: str
    obj: dict[str, Any]


def now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _details(rt: ResourceType, name: str) -> dict[str, Any]:
    return {"name": name, "group": rt.group, "kind": rt.plural}


def _body_of(obj: dict[str, Any]) -> dict[str, Any]:
    """What ``generation`` tracks: everything but metadata and status."""
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


class Store:
    """Objects by key, the global resourceVersion clock, bounded history and live watchers."""

    def __init__(self, *, history: int = 5000) -> None:
        self.registry = Registry()
        self.objects: dict[Key, dict[str, Any]] = {}
        self.rv = 0
        self.history: deque[Event] = deque(maxlen=history)
        self.watchers: set[asyncio.Queue[Event]] = set()
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            rt = self.registry.get("", "v1", "namespaces")
            assert rt is not None
            self.create(rt, "", {"metadata": {"name": ns}})

    # --- clock, history, watchers -------------------------------------------------------------

    def _tick(self) -> int:
        self.rv += 1
        return self.rv

    def _emit(self, kind: str, rt: ResourceType, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        event = Event(
            int(meta["resourceVersion"]), kind, rt.group, rt.plural, meta.get("namespace", ""), obj
        )
        self.history.append(event)
        for queue in list(self.watchers):
            queue.put_nowait(event)

    def oldest_rv(self) -> int:
        """The lowest resourceVersion a watch may resume from without a 410 Gone."""
        return self.history[0].rv - 1 if len(self.history) == self.history.maxlen else 0

    # --- reads --------------------------------------------------------------------------------

    @staticmethod
    def key(rt: ResourceType, namespace: str, name: str) -> Key:
        return (rt.group, rt.plural, namespace if rt.namespaced else "", name)

    def get(self, rt: ResourceType, namespace: str, name: str) -> dict[str, Any]:
        obj = self.objects.get(self.key(rt, namespace, name))
        if obj is None:
            raise ApiError(
                404,
                "NotFound",
                f'{rt.plural}{"." + rt.group if rt.group else ""} "{name}" not found',
                _details(rt, name),
            )
        return obj

    def list(self, rt: ResourceType, namespace: str | None) -> list[dict[str, Any]]:
        """Objects of a type, in one namespace or (``None``) all, sorted by namespace and name."""
        found = [
            obj
            for (g, p, ns, _), obj in self.objects.items()
            if (g, p) == rt.group_plural and (namespace is None or ns == namespace)
        ]
        return sorted(
            found, key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"])
        )

    # --- writes -------------------------------------------------------------------------------

    def _admit(
        self,
        rt: ResourceType,
        obj: dict[str, Any],
        old: dict[str, Any] | None,
        *,
        strict: bool = False,
    ) -> dict[str, Any]:
        """Prune, default and validate a custom resource like the apiextensions server."""
        if rt.schema is None:
            return obj
        pruned = schemas.prune(rt.schema, obj)
        if strict and pruned != obj:
            unknown = ", ".join(f'unknown field "{f}"' for f in schemas.unknown_fields(obj, pruned))
            raise ApiError(400, "BadRequest", f"strict decoding error: {unknown}")
        obj = schemas.apply_defaults(rt.schema, pruned)
        errors = schemas.validate_custom_resource(rt.schema, obj, old)
        _refuse(rt, obj["metadata"], errors)
        return obj

    def create(
        self,
        rt: ResourceType,
        namespace: str,
        body: dict[str, Any],
        *,
        strict: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(
                    422,
                    "Invalid",
                    f"{rt.kind} is invalid: metadata.name: Required value: "
                    "name or generateName is required",
                )
            meta["name"] = objectmeta.generated_name(meta["generateName"], secrets.token_hex(3)[:5])
        _refuse(rt, meta, objectmeta.object_meta_errors(rt.group_plural, meta, creating=True))
        name = meta["name"]
        if rt.namespaced:
            namespace = namespace or meta.get("namespace") or "default"
            if ("", "namespaces", "", namespace) not in self.objects:
                raise ApiError(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        key = self.key(rt, namespace, name)
        if key in self.objects:
            raise ApiError(
                409,
                "AlreadyExists",
                f'{rt.plural}{"." + rt.group if rt.group else ""} "{name}" already exists',
                _details(rt, name),
            )
        obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
        if rt.status_subresource:
            obj.pop("status", None)
        _refuse(rt, meta, builtin_defaults.workload_errors(rt, obj, None))
        obj = builtin_defaults.on_create(rt, obj)
        obj = self._admit(rt, obj, None, strict=strict)
        meta = obj["metadata"]
        meta.update(uid=str(uuid.uuid4()), generation=1, creationTimestamp=now())
        meta.pop("resourceVersion", None)
        meta.pop("deletionTimestamp", None)
        if dry_run:
            return obj
        if rt.group_plural == ("apiextensions.k8s.io", "customresourcedefinitions"):
            obj = self._establish(obj)
        meta["resourceVersion"] = str(self._tick())
        self.objects[key] = obj
        self._emit("ADDED", rt, obj)
        return obj

    def update(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        body: dict[str, Any],
        *,
        subresource: str = "",
        strict: bool = False,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """PUT semantics (PATCH computes the body, then calls this)."""
        old = self.get(rt, namespace, name)
        meta_in = body.get("metadata") or {}
        want_rv = meta_in.get("resourceVersion")
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409,
                "Conflict",
                f"Operation cannot be fulfilled on {rt.plural}{'.' + rt.group if rt.group else ''} "
                f'"{name}": the object has been modified; please apply your changes to the '
                "latest version and try again",
                _details(rt, name),
            )
        if subresource == "status":
            new = copy.deepcopy(old)
            if "status" in body:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        else:
            new = copy.deepcopy(body)
            new["apiVersion"], new["kind"] = rt.api_version, rt.kind
            meta = new.setdefault("metadata", {})
            for field in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "namespace",
                "name",
                "generation",
                "deletionGracePeriodSeconds",
            ):
                if field in old["metadata"]:
                    meta[field] = old["metadata"][field]
                else:
                    meta.pop(field, None)
            if rt.status_subresource:
                if "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"]
        if old["metadata"].get("deletionTimestamp") and len(
            new["metadata"].get("finalizers") or []
        ) > len(old["metadata"].get("finalizers") or []):
            raise ApiError(
                422,
                "Invalid",
                f'{rt.kind} "{name}" is invalid: metadata.finalizers: Forbidden: '
                "no new finalizers can be added if the object is being deleted",
            )
        if subresource != "status":
            errors = objectmeta.object_meta_errors(rt.group_plural, new["metadata"], creating=False)
            errors += builtin_defaults.workload_errors(rt, new, old)
            _refuse(rt, new["metadata"], errors)
        new = self._admit(rt, new, old, strict=strict)
        if new == old or dry_run:
            return old if not dry_run else new
        if _body_of(new) != _body_of(old):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        if rt.group_plural == ("apiextensions.k8s.io", "customresourcedefinitions"):
            new = self._establish(new)
        new["metadata"]["resourceVersion"] = str(self._tick())
        key = self.key(rt, namespace, name)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self.objects[key] = new
            self._remove(rt, key)
            return new
        self.objects[key] = new
        self._emit("MODIFIED", rt, new)
        return new

    def delete(
        self,
        rt: ResourceType,
        namespace: str,
        name: str,
        *,
        propagation: str | None = None,
        precondition_uid: str | None = None,
        precondition_rv: str | None = None,
    ) -> dict[str, Any]:
        old = self.get(rt, namespace, name)
        if precondition_uid and precondition_uid != old["metadata"]["uid"]:
            raise ApiError(
                409,
                "Conflict",
                f"Precondition failed: UID in precondition: {precondition_uid}, "
                f"UID in object meta: {old['metadata']['uid']}",
                _details(rt, name),
            )
        if precondition_rv and precondition_rv != old["metadata"]["resourceVersion"]:
            raise ApiError(
                409, "Conflict", "Precondition failed: resourceVersion mismatch", _details(rt, name)
            )
        key = self.key(rt, namespace, name)
        policy = propagation or builtin_defaults.default_propagation(rt)
        if old["metadata"].get("finalizers"):
            if old["metadata"].get("deletionTimestamp"):
                return old
            new = copy.deepcopy(old)
            new["metadata"].update(
                deletionTimestamp=now(),
                deletionGracePeriodSeconds=0,
                resourceVersion=str(self._tick()),
            )
            self.objects[key] = new
            self._emit("MODIFIED", rt, new)
            return new
        return self._remove(rt, key, policy=policy)

    def _remove(self, rt: ResourceType, key: Key, *, policy: str = "Background") -> dict[str, Any]:
        obj = self.objects.pop(key)
        gone = copy.deepcopy(obj)
        gone["metadata"]["resourceVersion"] = str(self._tick())
        self._emit("DELETED", rt, gone)
        if rt.group_plural == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._drop_crd(obj)
        if rt.group_plural == ("", "namespaces"):
            for other in [k for k in self.objects if k[2] == key[3]]:
                self._delete_key(other)
        self._collect(obj["metadata"]["uid"], policy)
        return gone

    def _delete_key(self, key: Key, *, policy: str | None = None) -> None:
        rt = self.registry.storage_type(key[0], key[1])
        if rt is not None and key in self.objects:
            self.delete(rt, key[2], key[3], propagation=policy)

    def _collect(self, owner_uid: str, policy: str) -> None:
        """Garbage-collect (or orphan) the dependents of a deleted owner, cascading."""
        for key, obj in list(self.objects.items()):
            refs = obj["metadata"].get("ownerReferences") or []
            if not any(r.get("uid") == owner_uid for r in refs) or key not in self.objects:
                continue
            rt = self.registry.storage_type(key[0], key[1])
            if rt is None:
                continue
            if policy == "Orphan":
                new = copy.deepcopy(obj)
                new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != owner_uid]
                new["metadata"]["resourceVersion"] = str(self._tick())
                self.objects[key] = new
                self._emit("MODIFIED", rt, new)
            else:
                self.delete(rt, key[2], key[3], propagation="Background")

    # --- CRDs ---------------------------------------------------------------------------------

    def _establish(self, crd: dict[str, Any]) -> dict[str, Any]:
        """Serve the CRD's resources and report it Established, as apiextensions does."""
        spec = crd.get("spec") or {}
        self.registry.remove_group_plural(
            spec.get("group", ""), (spec.get("names") or {}).get("plural", "")
        )
        for rt in types_from_crd(crd):
            self.registry.add(rt)
        stamp = now()
        crd["status"] = {
            "acceptedNames": spec.get("names") or {},
            "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
            "conditions": [
                {
                    "type": t,
                    "status": "True",
                    "reason": r,
                    "message": m,
                    "lastTransitionTime": stamp,
                }
                for t, r, m in (
                    ("NamesAccepted", "NoConflicts", "no conflicts found"),
                    ("Established", "InitialNamesAccepted", "the initial names have been accepted"),
                )
            ],
        }
        return crd

    def _drop_crd(self, crd: dict[str, Any]) -> None:
        group = crd["spec"]["group"]
        plural = crd["spec"]["names"]["plural"]
        for key in [k for k in self.objects if (k[0], k[1]) == (group, plural)]:
            rt = self.registry.storage_type(group, plural)
            if rt is not None and key in self.objects:
                self._remove(rt, key)
        self.registry.remove_group_plural(group, plural)
