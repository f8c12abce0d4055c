"""What a real API server's registry strategies add to built-in objects on create.

Only the fields a client of this project reads are filled in: a Namespace is ``Active``, a Pod
starts ``Pending``, a Job gets its defaulted spec (completions, parallelism, backoffLimit,
completionMode, suspend) plus the ``controller-uid``/``job-name`` labels and selector that the
Job controller relies on, a Service gets a cluster IP, a Secret's ``stringData`` becomes ``data``.
"""

from __future__ import annotations

import base64
import itertools
import uuid
from typing import Any

from tests.harness.resources import ResourceType

_ips = itertools.count(10)


def on_create(rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """Return ``obj`` with the server-side defaults of its built-in kind (custom kinds: as is)."""
    if rt.custom:
        return obj
    kind = (rt.group, rt.plural)
    if kind == ("", "namespaces"):
        obj["status"] = {"phase": "Active"}
        obj.setdefault("spec", {"finalizers": ["kubernetes"]})
    elif kind == ("", "pods"):
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    elif kind == ("", "services"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("clusterIP", f"10.96.0.{next(_ips) % 250}")
    elif kind == ("", "secrets"):
        data = obj.setdefault("data", {})
        for key, value in (obj.pop("stringData", None) or {}).items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj.setdefault("type", "Opaque")
    elif kind == ("batch", "jobs"):
        _default_job(obj)
    elif kind in (("apps", "deployments"), ("apps", "replicasets")):
        _default_workload(obj, deployment=kind[1] == "deployments")
    return obj


def _default_workload(obj: dict[str, Any], *, deployment: bool) -> None:
    """apps/v1 defaults: 1 replica, RollingUpdate 25%/25%, restartPolicy Always; a missing
    selector (which a real API server refuses) is taken from the template's labels."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    template = spec.setdefault("template", {})
    labels = template.setdefault("metadata", {}).setdefault("labels", {})
    spec.setdefault("selector", {"matchLabels": dict(labels)})
    if deployment:
        spec.setdefault("strategy", {})
        spec["strategy"].setdefault("type", "RollingUpdate")
        if spec["strategy"]["type"] == "RollingUpdate":
            rolling = spec["strategy"].setdefault("rollingUpdate", {})
            rolling.setdefault("maxSurge", "25%")
            rolling.setdefault("maxUnavailable", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    pod_spec = template.setdefault("spec", {})
    pod_spec.setdefault("restartPolicy", "Always")
    for container in pod_spec.get("containers") or []:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", "IfNotPresent")


def _default_job(job: dict[str, Any]) -> None:
    spec = job.setdefault("spec", {})
    indexed = spec.get("completionMode") == "Indexed"
    spec.setdefault("parallelism", 1)
    spec.setdefault("completions", spec["parallelism"] if indexed else 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", False)
    controller_uid = str(uuid.uuid4())
    labels = {
        "batch.kubernetes.io/controller-uid": controller_uid,
        "batch.kubernetes.io/job-name": job["metadata"]["name"],
        "controller-uid": controller_uid,
        "job-name": job["metadata"]["name"],
    }
    template = spec.setdefault("template", {})
    template.setdefault("metadata", {}).setdefault("labels", {}).update(labels)
    spec.setdefault(
        "selector", {"matchLabels": {"batch.kubernetes.io/controller-uid": controller_uid}}
    )
    pod_spec = template.setdefault("spec", {})
    pod_spec.setdefault("restartPolicy", "Never")
    for container in pod_spec.get("containers") or []:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", "IfNotPresent")


def default_propagation(rt: ResourceType) -> str:
    """The API's default cascade: ``batch/v1`` Jobs orphan their Pods unless told otherwise.

    This is the real (surprising) default of the Jobs REST API: clients that delete a Job
    without ``propagationPolicy`` leave its Pods behind. kubectl sends ``Background``.
    """
    return "Orphan" if (rt.group, rt.plural) == ("batch", "jobs") else "Background"
