"""Pure rules of the Deployment controller: template hash, ReplicaSet and Pod manifests, the next
step of a rolling update, and the Deployment status it reports (no I/O; ``deployments`` acts).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from tests.harness.builtin_defaults import default_pod_template
from tests.harness.job_status import condition
from tests.harness.ports import HOST_PORTS

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
_SAFE = "bcdfghjklmnpqrstvwxz2456789"  # the alphabet of Kubernetes' rand.SafeEncodeString


def template_hash(template: dict[str, Any]) -> str:
    """A stable short hash of the (defaulted) pod template, in the real controller's alphabet."""
    defaulted = default_pod_template(copy.deepcopy(template))
    digest = hashlib.sha256(json.dumps(defaulted, sort_keys=True).encode()).digest()
    return "".join(_SAFE[b % len(_SAFE)] for b in digest[:10])


def _scaled(value: Any, replicas: int, *, round_up: bool, default: str) -> int:
    raw = default if value is None else value
    if isinstance(raw, str) and raw.endswith("%"):
        share = replicas * int(raw[:-1]) / 100
        return math.ceil(share) if round_up else math.floor(share)
    return int(raw)


def surge_and_unavailable(spec: dict[str, Any]) -> tuple[int, int]:
    """``(maxSurge, maxUnavailable)`` of a RollingUpdate strategy (defaults 25% / 25%; both
    zero is refused by a real API server, here it means maxUnavailable 1, as the controller
    falls back to)."""
    replicas = int(spec.get("replicas", 1))
    rolling = (spec.get("strategy") or {}).get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge"), replicas, round_up=True, default="25%")
    unavailable = _scaled(rolling.get("maxUnavailable"), replicas, round_up=False, default="25%")
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


@dataclass(frozen=True)
class PodView:
    """What the rollout needs to know about one running pod."""

    name: str
    hash: str
    ready: bool


def next_step(spec: dict[str, Any], current: str, pods: list[PodView]) -> tuple[int, list[str]]:
    """How many new-template pods to start and which pods to stop now.

    RollingUpdate: start new pods while the total stays within ``replicas + maxSurge``; stop old
    pods (unready ones first) while the ready count stays at least ``replicas -
    maxUnavailable``. Recreate: stop every old pod first, start new ones once none is left.
    """
    replicas = int(spec.get("replicas", 1))
    new = [p for p in pods if p.hash == current]
    old = [p for p in pods if p.hash != current]
    stop = [p.name for p in new[replicas:]] if len(new) > replicas else []
    new = new[:replicas]
    if (spec.get("strategy") or {}).get("type") == "Recreate":
        if old:
            return 0, stop + [p.name for p in old]
        return replicas - len(new), stop
    surge, unavailable = surge_and_unavailable(spec)
    start = max(0, min(replicas - len(new), replicas + surge - len(new) - len(old)))
    ready = sum(p.ready for p in new + old)
    floor = replicas - unavailable
    for pod in sorted(old, key=lambda p: p.ready):
        if not pod.ready:
            stop.append(pod.name)
        elif ready - 1 >= floor:
            stop.append(pod.name)
            ready -= 1
    return start, stop


def replica_set(deployment: dict[str, Any], pod_hash: str, revision: int) -> dict[str, Any]:
    """The ReplicaSet the controller creates for the current template (owned by the
    Deployment, named ``<deployment>-<hash>``)."""
    meta, spec = deployment["metadata"], deployment["spec"]
    template = copy.deepcopy(spec.get("template") or {})
    labels = {**((template.get("metadata") or {}).get("labels") or {}), HASH_LABEL: pod_hash}
    template.setdefault("metadata", {})["labels"] = labels
    selector = copy.deepcopy(spec.get("selector") or {"matchLabels": {}})
    selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
    return {
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": f"{meta['name']}-{pod_hash}",
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": {REVISION: str(revision)},
            "ownerReferences": [owner_ref(deployment)],
        },
        "spec": {
            "replicas": int(spec.get("replicas", 1)),
            "selector": selector,
            "template": template,
        },
    }


def owner_ref(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_manifest(
    replica_set: dict[str, Any], suffix: str, host_ports_annotation: str
) -> dict[str, Any]:
    """A Pod of ``replica_set`` (``<rs>-<suffix>``), with its host-port mapping annotated."""
    template = copy.deepcopy(replica_set["spec"]["template"])
    tmeta = template.get("metadata") or {}
    annotations = {**(tmeta.get("annotations") or {})}
    if host_ports_annotation:
        annotations[HOST_PORTS] = host_ports_annotation
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{replica_set['metadata']['name']}-{suffix}",
            "namespace": replica_set["metadata"]["namespace"],
            "labels": dict(tmeta.get("labels") or {}),
            "annotations": annotations,
            "ownerReferences": [owner_ref(replica_set)],
        },
        "spec": template.get("spec") or {},
    }


def deployment_status(
    deployment: dict[str, Any],
    current: str,
    pods: list[PodView],
    previous: dict[str, Any],
) -> dict[str, Any]:
    """``status`` as the controller reports it (conditions keep their transition time while
    their status stays the same)."""
    spec = deployment["spec"]
    replicas = int(spec.get("replicas", 1))
    updated = [p for p in pods if p.hash == current]
    ready = sum(p.ready for p in pods)
    _, unavailable = surge_and_unavailable(spec)
    complete = len(updated) == replicas == len(pods) and all(p.ready for p in updated)
    name = deployment["metadata"]["name"]
    rs_name = f"{name}-{current}"
    available = (
        condition("Available", "MinimumReplicasAvailable", "Deployment has minimum availability.")
        if ready >= replicas - unavailable
        else condition(
            "Available",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            status="False",
        )
    )
    progressing = condition(
        "Progressing",
        "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
        f'ReplicaSet "{rs_name}" '
        + ("has successfully progressed." if complete else "is progressing."),
    )
    status = {
        "observedGeneration": deployment["metadata"].get("generation", 1),
        "replicas": len(pods),
        "updatedReplicas": len(updated),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "unavailableReplicas": max(0, replicas - ready),
        "conditions": [
            _keep_time(available, previous),
            _keep_time(progressing, previous),
        ],
    }
    return status


def _keep_time(cond: dict[str, Any], previous: dict[str, Any]) -> dict[str, Any]:
    for old in previous.get("conditions") or []:
        if old.get("type") == cond["type"] and old.get("status") == cond["status"]:
            cond["lastTransitionTime"] = old.get("lastTransitionTime", cond["lastTransitionTime"])
            if old.get("reason") == cond["reason"]:
                cond["lastUpdateTime"] = old.get("lastUpdateTime", cond["lastTransitionTime"])
    cond.setdefault("lastUpdateTime", cond["lastTransitionTime"])
    cond.pop("lastProbeTime", None)
    return cond


def replica_set_status(rs: dict[str, Any], pods: list[PodView]) -> dict[str, Any]:
    ready = sum(p.ready for p in pods)
    return {
        "observedGeneration": rs["metadata"].get("generation", 1),
        "replicas": len(pods),
        "fullyLabeledReplicas": len(pods),
        "readyReplicas": ready,
        "availableReplicas": ready,
    }
