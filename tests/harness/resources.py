"""The resource types the emulator serves: built-ins, and those that CRDs declare at run time.

A ``ResourceType`` says everything the routing, discovery, table and schema layers need about
one (group, version, plural): its kind, scope, subresources, printer columns and, for custom
resources, the structural schema. Storage is keyed by (group, plural) so an object written
through one served version is visible through every other.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass(frozen=True)
class ResourceType:
    """One servable resource at one group/version (``group`` is ``""`` for the core API)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool = True
    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    status_subresource: bool = False
    printer_columns: tuple[dict[str, Any], ...] = ()
    schema: dict[str, Any] | None = field(default=None, compare=False, hash=False)
    custom: bool = False
    #: further subresources' discovery entries (``name`` is the part after ``plural/``)
    subresources: tuple[dict[str, Any], ...] = ()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def group_plural(self) -> tuple[str, str]:
        """The storage key shared by every served version of the resource."""
        return (self.group, self.plural)

    def discovery(self) -> list[dict[str, Any]]:
        """The APIResource entries of this type (and its status subresource) for discovery."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": _VERBS,
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        entries = [entry]
        if self.status_subresource:
            entries.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        for sub in self.subresources:
            entries.append(
                {"singularName": "", "namespaced": self.namespaced, **sub}
                | {"name": f"{self.plural}/{sub['name']}"}
            )
        return entries


def _rt(api_version: str, plural: str, kind: str, **kwargs: Any) -> ResourceType:
    group, _, version = api_version.rpartition("/")
    return ResourceType(group=group, version=version, plural=plural, kind=kind, **kwargs)


_JOB_COLUMNS = (
    {"name": "Status", "type": "string", "jsonPath": ".status.conditions[-1:].type"},
    {"name": "Completions", "type": "string", "jsonPath": ".spec.completions"},
    {"name": "Succeeded", "type": "integer", "jsonPath": ".status.succeeded"},
    {"name": "Failed", "type": "integer", "jsonPath": ".status.failed", "priority": 1},
    {"name": "Active", "type": "integer", "jsonPath": ".status.active", "priority": 1},
)
_POD_COLUMNS = (
    {"name": "Status", "type": "string", "jsonPath": ".status.phase"},
    {
        "name": "Restarts",
        "type": "integer",
        "jsonPath": ".status.containerStatuses[0].restartCount",
        "default": 0,
    },
    {"name": "Reason", "type": "string", "jsonPath": ".status.reason", "priority": 1},
)
_WIDE_TEMPLATE = (
    {
        "name": "Containers",
        "type": "string",
        "jsonPath": ".spec.template.spec.containers[*].name",
        "priority": 1,
    },
    {
        "name": "Images",
        "type": "string",
        "jsonPath": ".spec.template.spec.containers[*].image",
        "priority": 1,
    },
    {
        "name": "Selector",
        "type": "string",
        "jsonPath": ".spec.selector.matchLabels",
        "priority": 1,
        "labels": True,
    },
)
#: kubectl's READY is "ready/desired": ``over`` is a harness-only key (``tables._cell``).
_DEPLOYMENT_COLUMNS = (
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": ".status.readyReplicas",
        "over": ".spec.replicas",
    },
    {"name": "Up-to-date", "type": "integer", "jsonPath": ".status.updatedReplicas", "default": 0},
    {"name": "Available", "type": "integer", "jsonPath": ".status.availableReplicas", "default": 0},
    *_WIDE_TEMPLATE,
)
_REPLICA_SET_COLUMNS = (
    {"name": "Desired", "type": "integer", "jsonPath": ".spec.replicas", "default": 0},
    {"name": "Current", "type": "integer", "jsonPath": ".status.replicas", "default": 0},
    {"name": "Ready", "type": "integer", "jsonPath": ".status.readyReplicas", "default": 0},
    *_WIDE_TEMPLATE,
)

_SCALE = {
    "name": "scale",
    "group": "autoscaling",
    "version": "v1",
    "kind": "Scale",
    "verbs": ["get", "patch", "update"],
}
_PROXY_VERBS = ["create", "delete", "get", "patch", "update"]

#: What a kube-apiserver serves that the operator, kopf, kubectl and the kubelet touch.
BUILTINS: tuple[ResourceType, ...] = (
    _rt(
        "v1",
        "namespaces",
        "Namespace",
        namespaced=False,
        short_names=("ns",),
        status_subresource=True,
        printer_columns=({"name": "Status", "type": "string", "jsonPath": ".status.phase"},),
    ),
    _rt(
        "v1",
        "pods",
        "Pod",
        short_names=("po",),
        categories=("all",),
        status_subresource=True,
        printer_columns=_POD_COLUMNS,
        subresources=(
            {"name": "log", "kind": "Pod", "verbs": ["get"]},
            {"name": "proxy", "kind": "PodProxyOptions", "verbs": _PROXY_VERBS},
        ),
    ),
    _rt("v1", "events", "Event", short_names=("ev",)),
    _rt(
        "v1",
        "services",
        "Service",
        short_names=("svc",),
        categories=("all",),
        status_subresource=True,
        subresources=({"name": "proxy", "kind": "ServiceProxyOptions", "verbs": _PROXY_VERBS},),
    ),
    _rt("v1", "secrets", "Secret"),
    _rt("v1", "configmaps", "ConfigMap", short_names=("cm",)),
    _rt("v1", "serviceaccounts", "ServiceAccount", short_names=("sa",)),
    _rt(
        "batch/v1",
        "jobs",
        "Job",
        categories=("all",),
        status_subresource=True,
        printer_columns=_JOB_COLUMNS,
    ),
    _rt(
        "apps/v1",
        "deployments",
        "Deployment",
        short_names=("deploy",),
        categories=("all",),
        status_subresource=True,
        printer_columns=_DEPLOYMENT_COLUMNS,
        subresources=(_SCALE,),
    ),
    _rt(
        "apps/v1",
        "replicasets",
        "ReplicaSet",
        short_names=("rs",),
        categories=("all",),
        status_subresource=True,
        printer_columns=_REPLICA_SET_COLUMNS,
        subresources=(_SCALE,),
    ),
    _rt("events.k8s.io/v1", "events", "Event", short_names=("ev",)),
    _rt("coordination.k8s.io/v1", "leases", "Lease"),
    _rt(
        "apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        namespaced=False,
        short_names=("crd", "crds"),
        status_subresource=True,
    ),
)


def types_from_crd(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types (one per served version) that a CustomResourceDefinition declares."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    result = []
    for version in spec.get("versions") or []:
        if not version.get("served", True):
            continue
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        result.append(
            ResourceType(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                singular=names.get("singular", ""),
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                status_subresource="status" in (version.get("subresources") or {}),
                printer_columns=tuple(version.get("additionalPrinterColumns") or ()),
                schema=schema,
                custom=True,
            )
        )
    return result


class Registry:
    """The set of served resource types, looked up by (group, version, plural)."""

    def __init__(self) -> None:
        self._types: dict[tuple[str, str, str], ResourceType] = {}
        for rt in BUILTINS:
            self.add(rt)

    def add(self, rt: ResourceType) -> None:
        self._types[(rt.group, rt.version, rt.plural)] = rt

    def remove_group_plural(self, group: str, plural: str) -> None:
        for key in [k for k in self._types if (k[0], k[2]) == (group, plural)]:
            del self._types[key]

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._types.get((group, version, plural))

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def groups(self) -> dict[str, list[str]]:
        """Named groups (not the core one) and their versions, preferred version first."""
        found: dict[str, list[str]] = {}
        for group, version, _ in self._types:
            if group and version not in found.setdefault(group, []):
                found[group].append(version)
        return found

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for (g, v, _), rt in self._types.items() if (g, v) == (group, version)]

    def storage_type(self, group: str, plural: str) -> ResourceType | None:
        """Any served version of a resource: used where the version does not matter (GC)."""
        for (g, _, p), rt in self._types.items():
            if (g, p) == (group, plural):
                return rt
        return None
