"""The ``scale`` subresource of Deployments and ReplicaSets (``autoscaling/v1`` Scale).

What ``kubectl scale deployment/x --replicas=N`` and autoscalers read and write: GET answers
the object's replicas (spec and status) and its selector as a string; PUT or PATCH of a Scale
sets ``spec.replicas`` on the object itself (a normal write: generation bumps, the controller
acts). A negative or non-integer count is refused as kube-apiserver refuses it.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.harness import patches
from tests.harness.resources import ResourceType
from tests.harness.store import ApiError, Store

SCALABLE = (("apps", "deployments"), ("apps", "replicasets"))


def to_scale(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    labels = ((obj.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    return {
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            k: meta[k]
            for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
            if k in meta
        },
        "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
        "status": {
            "replicas": (obj.get("status") or {}).get("replicas", 0),
            "selector": ",".join(f"{k}={v}" for k, v in sorted(labels.items())),
        },
    }


def serve(
    store: Store,
    rt: ResourceType,
    *,
    namespace: str,
    name: str,
    verb: str,
    body: Any,
    content_type: str,
) -> dict[str, Any]:
    """The Scale after a get, update or patch of ``rt``'s object ``name``."""
    obj = store.get(rt, namespace, name)
    if verb == "get":
        return to_scale(obj)
    if verb == "patch":
        wanted = patches.apply_patch(to_scale(obj), body, content_type)
    elif verb == "update":
        wanted = body if isinstance(body, dict) else {}
    else:
        raise ApiError(405, "MethodNotAllowed", f"{verb} is not supported on {rt.plural}/scale")
    replicas = (wanted.get("spec") or {}).get("replicas")
    if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
        raise ApiError(
            422,
            "Invalid",
            f'Scale.autoscaling "{name}" is invalid: spec.replicas: Invalid value: '
            f"{replicas}: must be greater than or equal to 0",
        )
    updated = copy.deepcopy(obj)
    updated["spec"]["replicas"] = replicas
    return to_scale(store.update(rt, namespace, name, updated))
