"""A toy kopf operator for the harness's own end-to-end test: it owns a ConfigMap per Widget.

On create it makes a child ConfigMap (adopted: ownerReferences to the Widget) and writes the
Widget's ``status.phase``; it has a (non-optional) delete handler, so kopf puts its finalizer on
every Widget and must remove it before the Widget disappears.
"""

from __future__ import annotations

from typing import Any

import kopf
import kubernetes

DELETED: list[str] = []


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    settings.watching.server_timeout = 10
    settings.watching.client_timeout = 15
    settings.posting.level = 20  # post INFO events too: exercises generateName on events


@kopf.on.create("example.dev", "v1", "widgets", retries=3, backoff=0.2)
def create_child(
    name: str, namespace: str | None, spec: kopf.Spec, body: kopf.Body, **_: Any
) -> dict[str, Any]:
    child: Any = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{name}-child"},
        "data": {"size": str(spec.get("size"))},
    }
    kopf.adopt(child, owner=body)
    kubernetes.config.load_kube_config()  # type: ignore[no-untyped-call]
    kubernetes.client.CoreV1Api().create_namespaced_config_map(namespace or "default", child)
    kopf.info(body, reason="ChildCreated", message=f"created {name}-child")
    return {"child": f"{name}-child"}


@kopf.on.create("example.dev", "v1", "widgets", retries=3, backoff=0.2)
def mark_ready(patch: kopf.Patch, **_: Any) -> None:
    patch.status["phase"] = "Ready"


@kopf.on.delete("example.dev", "v1", "widgets", retries=3, backoff=0.2)
def forget(name: str, **_: Any) -> None:
    DELETED.append(name)
