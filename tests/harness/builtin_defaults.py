"""What a real API server's registry strategies add to built-in objects on create.

Only the fields a client of this project reads are filled in: a Namespace is ``Active``, a Pod
starts ``Pending``, a Job gets its defaulted spec (completions, parallelism, backoffLimit,
completionMode, suspend) plus the ``controller-uid``/``job-name`` labels and selector that the
Job controller relies on, a Deployment or ReplicaSet its apps/v1 defaults (``workload_errors``:
what apps/v1 validation refuses), a Service gets a cluster IP, a Secret's ``stringData`` becomes
``data``.
"""

from __future__ import annotations

import base64
import itertools
import uuid
from typing import Any

from selftaught.validation import FieldError
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


def workload_errors(
    rt: ResourceType, obj: dict[str, Any], old: dict[str, Any] | None
) -> list[FieldError]:
    """What apps/v1 validation refuses in a Deployment or ReplicaSet (a subset, worded as
    kube-apiserver words it): a missing selector, one that does not match the template's
    labels, a selector changed on update, negative replicas, no containers."""
    if (rt.group, rt.plural) not in (("apps", "deployments"), ("apps", "replicasets")):
        return []
    spec = obj.get("spec") or {}
    selector = spec.get("selector")
    labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    errors = []
    if not selector:
        errors.append(FieldError("spec.selector", "Required value", "FieldValueRequired"))
    elif any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        shown = "map[string]string{" + ", ".join(f'"{k}":"{v}"' for k, v in labels.items()) + "}"
        errors.append(
            FieldError(
                "spec.template.metadata.labels",
                f"Invalid value: {shown}: `selector` does not match template `labels`",
            )
        )
    if old is not None and selector != (old.get("spec") or {}).get("selector"):
        errors.append(FieldError("spec.selector", "Invalid value: field is immutable"))
    replicas = spec.get("replicas", 1)
    if not isinstance(replicas, int) or replicas < 0:
        errors.append(
            FieldError(
                "spec.replicas",
                f"Invalid value: {replicas}: must be greater than or equal to 0",
            )
        )
    if not ((spec.get("template") or {}).get("spec") or {}).get("containers"):
        errors.append(
            FieldError("spec.template.spec.containers", "Required value", "FieldValueRequired")
        )
    return errors


def _default_workload(obj: dict[str, Any], *, deployment: bool) -> None:
    """apps/v1 defaults: 1 replica, RollingUpdate 25%/25%, revisionHistoryLimit 10,
    progressDeadlineSeconds 600, restartPolicy Always."""
    spec = obj.setdefault("spec", {})
    spec.setdefault("replicas", 1)
    template = spec.setdefault("template", {})
    if deployment:
        spec.setdefault("strategy", {})
        spec["strategy"].setdefault("type", "RollingUpdate")
        if spec["strategy"]["type"] == "RollingUpdate":
            rolling = spec["strategy"].setdefault("rollingUpdate", {})
            rolling.setdefault("maxSurge", "25%")
            rolling.setdefault("maxUnavailable", "25%")
        spec.setdefault("revisionHistoryLimit", 10)
        spec.setdefault("progressDeadlineSeconds", 600)
    default_pod_template(template)


def default_pod_template(template: dict[str, Any]) -> dict[str, Any]:
    """A workload's pod template with the pod defaults this emulator fills in (in place).

    Also what the Deployment controller hashes, so a template written again without the
    defaults (a PUT, an apply) is the same template, as on a real API server that defaults
    every write."""
    pod_spec = template.setdefault("spec", {})
    pod_spec.setdefault("restartPolicy", "Always")
    for container in pod_spec.get("containers") or []:
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("imagePullPolicy", "IfNotPresent")
    return template


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
