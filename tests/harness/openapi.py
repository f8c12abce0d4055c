"""``/openapi/v3``: just enough OpenAPI for ``kubectl apply`` with validation turned on.

kubectl 1.32 downloads the v3 index, then the document of the resource's group/version, and
looks for the PATCH operation of the resource: if it takes a ``fieldValidation`` parameter,
kubectl sends ``fieldValidation=Strict`` and leaves validation to the server (which prunes,
defaults and validates custom resources with their CRD schema, and rejects unknown fields).
The PATCH content types listed decide the patch kubectl computes: strategic merge for built-ins,
JSON merge patch for custom resources, as with a real server.

Component schemas carry ``x-kubernetes-group-version-kind`` so ``kubectl explain`` and client-side
validation (the fallback) find them: the CRD's own schema for custom resources, a permissive
object for built-ins (this emulator does not ship the upstream built-in schemas).

``/openapi/v2`` is served as an empty swagger document (protobuf, the only encoding client-go asks
for): kubectl falls back to it when a manifest's group/version is not in the v3 index, finds no
schema and skips validation, so an unknown kind ends in kubectl's own "no matches for kind ...
ensure CRDs are installed first" instead of "failed to download openapi".
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import aiohttp.web

from tests.harness import patches
from tests.harness.resources import Registry, ResourceType

_PERMISSIVE = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _gv_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _schema_name(rt: ResourceType) -> str:
    group = ".".join(reversed(rt.group.split("."))) if rt.group else "io.k8s.api.core"
    return f"{group}.{rt.version}.{rt.kind}"


def _component(rt: ResourceType) -> dict[str, Any]:
    gvk = [{"group": rt.group, "version": rt.version, "kind": rt.kind}]
    if rt.schema is None:
        return {**_PERMISSIVE, "x-kubernetes-group-version-kind": gvk}
    schema: dict[str, Any] = json.loads(json.dumps(rt.schema))
    props = schema.setdefault("properties", {})
    props.setdefault("apiVersion", {"type": "string"})
    props.setdefault("kind", {"type": "string"})
    props.setdefault("metadata", {"type": "object"})
    schema["x-kubernetes-group-version-kind"] = gvk
    return schema


def _operation(
    rt: ResourceType, action: str, ref: dict[str, Any], *, content: list[str] | None = None
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{action}{rt.kind}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": rt.group,
            "version": rt.version,
            "kind": rt.kind,
        },
        "parameters": [
            {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
            {
                "name": "fieldValidation",
                "in": "query",
                "schema": {"type": "string", "uniqueItems": True},
            },
        ],
        "responses": {
            "200": {"description": "OK", "content": {"application/json": {"schema": ref}}}
        },
    }
    if content:
        op["requestBody"] = {"content": {c: {"schema": ref} for c in content}, "required": True}
    return op


def _paths(rt: ResourceType) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{_schema_name(rt)}"}
    base = "/" + _gv_key(rt.group, rt.version)
    collection = (
        f"{base}/namespaces/{{namespace}}/{rt.plural}" if rt.namespaced else f"{base}/{rt.plural}"
    )
    patch_types = [patches.JSON, patches.MERGE, patches.APPLY]
    if not rt.custom:
        patch_types.insert(2, patches.STRATEGIC)
    item = {
        "get": _operation(rt, "get", ref),
        "put": _operation(rt, "put", ref, content=["application/json"]),
        "patch": _operation(rt, "patch", ref, content=patch_types),
        "delete": _operation(rt, "delete", ref),
    }
    paths = {
        collection: {
            "get": _operation(rt, "list", ref),
            "post": _operation(rt, "post", ref, content=["application/json"]),
        },
        f"{collection}/{{name}}": item,
    }
    if rt.status_subresource:
        paths[f"{collection}/{{name}}/status"] = {k: item[k] for k in ("get", "put", "patch")}
    return paths


def _group_version_doc(types: list[ResourceType], key: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (selftaught emulator)", "version": "v1.32.0"},
        "paths": {},
        "components": {"schemas": {}},
    }
    for rt in sorted(types, key=lambda t: t.plural):
        doc["paths"].update(_paths(rt))
        doc["components"]["schemas"][_schema_name(rt)] = _component(rt)
    return doc


def document(registry: Registry, parts: list[str]) -> dict[str, Any] | None:
    """The document for ``/openapi/<parts>``, or None for a 404 (``/openapi/v2`` included)."""
    if not parts or parts[0] != "v3":
        return None
    by_gv: dict[str, list[ResourceType]] = {}
    for rt in registry.all():
        by_gv.setdefault(_gv_key(rt.group, rt.version), []).append(rt)
    if len(parts) == 1:
        index = {}
        for key, types in sorted(by_gv.items()):
            digest = hashlib.sha256(
                json.dumps(_group_version_doc(types, key), sort_keys=True).encode()
            ).hexdigest()
            index[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest[:32].upper()}"}
        return {"paths": index}
    key = "/".join(parts[1:])
    found = by_gv.get(key)
    return _group_version_doc(found, key) if found else None


#: ``openapi_v2.Document{swagger: "2.0"}`` in protobuf: field 1, length 3.
_V2_EMPTY = b"\x0a\x032.0"
V2_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"


def v2_response() -> aiohttp.web.Response:
    """An OpenAPI v2 document with no definitions (see the module docstring for why)."""
    return aiohttp.web.Response(body=_V2_EMPTY, content_type=V2_CONTENT_TYPE)
