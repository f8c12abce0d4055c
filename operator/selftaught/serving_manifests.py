"""``spec.serve`` -> the Deployment and ClusterIP Service that serve the best judge. Pure.

The planner decides *which* judge is served (:mod:`selftaught.plan.serving`); this module
decides *what the server looks like*, the way :mod:`selftaught.jobs` does for stage Jobs, and
shares its pod rules (restricted Pod Security, no service-account token, emptyDirs under a
read-only root, storage credentials only as ``secretKeyRef``).

Choices that matter, and why:

* ``RollingUpdate`` with ``maxUnavailable: 0, maxSurge: 1``: a new judge starts beside the old
  ones and an old replica goes only once a new one is Ready, so the endpoint never goes down.
* The model URI and iteration are in the *pod template* (command line and annotations), so a
  new best changes the template: exactly one rollout per change of best, none otherwise.
* The readiness probe is the server's ``/health``, which answers only once the model is loaded
  (vLLM and :mod:`selftaught.serving.app` both bind late), so a loading replica takes no
  traffic; a startup probe on the same route allows :data:`STARTUP_SECONDS` to load (a large
  model takes minutes), then the liveness probe restarts a server that stopped answering.
* :data:`SPEC_HASH_ANNOTATION` carries a hash of what this module built, so the controller
  patches only when the desired object changed, never on every reconcile.
"""

from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

from selftaught import jobs, names
from selftaught.api import SelfTaughtRun, ServeSpec
from selftaught.pod import CACHE_ENV

#: Annotation holding :func:`spec_hash` of the desired object (Deployment and Service).
SPEC_HASH_ANNOTATION = "selftaught.dev/spec-hash"
#: Pod-template annotations naming the judge the pods serve.
MODEL_ANNOTATION = "selftaught.dev/model-uri"
ITERATION_ANNOTATION = "selftaught.dev/iteration"
CONTAINER_NAME = "server"
HEALTH_PATH = "/health"
PORT_NAME = "http"
COMPONENT = "judge-server"
#: Seconds a server may take to load its judge before liveness checks start (a 70B judge
#: downloaded from S3 and loaded onto 8 GPUs takes minutes).
STARTUP_SECONDS = 1800


def labels(run: SelfTaughtRun) -> dict[str, str]:
    """Labels of the Deployment and Service: ours (the operator watches them by
    ``managed-by``), which run (uid) they belong to, and the component."""
    return {
        names.LABEL_MANAGED_BY: names.MANAGED_BY,
        "app.kubernetes.io/name": "selftaught-judge",
        "app.kubernetes.io/component": COMPONENT,
        names.LABEL_RUN: names.label_value(run.name),
        names.LABEL_RUN_UID: run.uid,
        names.LABEL_SERVING: names.label_value(run.name),
    }


def selector(run: SelfTaughtRun) -> dict[str, str]:
    """The server pods' selector. Pods carry no ``managed-by``/``run-uid`` label: the operator
    reads a run's stage pods by those, and a server pod is not a stage."""
    return {
        "app.kubernetes.io/component": COMPONENT,
        names.LABEL_SERVING: names.label_value(run.name),
    }


def endpoint(run: SelfTaughtRun, serve: ServeSpec) -> str:
    """The in-cluster OpenAI base URL of the Service."""
    return f"http://{names.serving_name(run.name)}.{run.namespace}.svc:{serve.port}/v1"


def server_command(
    run: SelfTaughtRun, serve: ServeSpec, *, model_uri: str, iteration: int
) -> list[str]:
    """``selftaught serve-model ...``: fetch the judge through the storage layer, then serve
    it (``vllm serve`` or the project's own server; :mod:`selftaught.serving.model`)."""
    command = [
        "selftaught", "serve-model",
        "--model-uri", model_uri,
        "--name", run.name,
        "--iteration", str(iteration),
        "--engine", serve.engine,
        "--port", str(serve.port),
        "--tensor-parallel", str(serve.tensor_parallel),
        "--seed", str(run.spec.worker.seed),
    ]  # fmt: skip
    s3 = run.spec.storage.s3 if run.spec.storage else None
    if s3 is not None:
        command += ["--s3-settings", json.dumps(s3.dump(), sort_keys=True)]
    if serve.max_model_len:
        command += ["--max-model-len", str(serve.max_model_len)]
    if serve.extra_args:
        command += ["--", *serve.extra_args]
    return command


def build_deployment(
    run: SelfTaughtRun,
    *,
    model_uri: str,
    iteration: int,
    operator_settings: jobs.JobSettings | None = None,
) -> dict[str, Any]:
    """The apps/v1 Deployment serving ``model_uri`` (iteration ``iteration``) of ``run``."""
    serve = _serve(run)
    settings = operator_settings or jobs.JobSettings()
    pod_labels = selector(run)
    deployment_labels = labels(run)
    if serve.queue_name:
        pod_labels[jobs.KUEUE_QUEUE_LABEL] = deployment_labels[jobs.KUEUE_QUEUE_LABEL] = (
            serve.queue_name
        )
    template = {
        "metadata": {
            "labels": pod_labels,
            "annotations": {MODEL_ANNOTATION: model_uri, ITERATION_ANNOTATION: str(iteration)},
        },
        "spec": jobs.restricted_pod(
            run,
            serve,
            settings,
            _container(run, serve, settings, model_uri=model_uri, iteration=iteration),
        ),
    }
    manifest: dict[str, Any] = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": names.serving_name(run.name),
            "namespace": run.namespace,
            "labels": deployment_labels,
            "ownerReferences": [jobs.owner_reference(run)],
        },
        "spec": {
            "replicas": serve.replicas,
            "selector": {"matchLabels": selector(run)},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": template,
        },
    }
    return _hashed(manifest)


def build_service(run: SelfTaughtRun) -> dict[str, Any]:
    """The ClusterIP Service in front of the server pods (:func:`endpoint`)."""
    serve = _serve(run)
    manifest = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": names.serving_name(run.name),
            "namespace": run.namespace,
            "labels": labels(run),
            "ownerReferences": [jobs.owner_reference(run)],
        },
        "spec": {
            "type": "ClusterIP",
            "selector": selector(run),
            "ports": [
                {"name": PORT_NAME, "port": serve.port, "targetPort": PORT_NAME, "protocol": "TCP"}
            ],
        },
    }
    return _hashed(manifest)


def spec_hash(manifest: dict[str, Any]) -> str:
    """A short hash of everything the operator decides about an object (not its status)."""
    decided = {key: manifest[key] for key in ("metadata", "spec") if key in manifest}
    meta = dict(decided.get("metadata") or {})
    annotations = {
        k: v for k, v in (meta.get("annotations") or {}).items() if k != SPEC_HASH_ANNOTATION
    }
    meta["annotations"] = annotations
    decided["metadata"] = meta
    text = json.dumps(decided, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Pod-spec fields this module sets only when the spec asks for them: a JSON merge patch keeps
#: what it does not mention, so :func:`update_patch` nulls those the new object lacks.
OPTIONAL_POD_FIELDS = (
    "nodeSelector",
    "tolerations",
    "affinity",
    "priorityClassName",
    "serviceAccountName",
    "imagePullSecrets",
)
#: Labels set only when the spec asks for them (the Kueue queue).
OPTIONAL_LABELS = (jobs.KUEUE_QUEUE_LABEL,)


def update_patch(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The JSON merge patch that turns ``current`` (as the API server has it) into ``desired``
    (as built here): labels, annotations and spec as built, and null for every optional field
    or label the object has but ``desired`` no longer sets (``serve.tolerations`` removed, the
    queue unset). Lists are replaced whole, so containers and their commands need nothing more.
    Server defaults the object gained (``dnsPolicy``, ``clusterIP``) are left alone."""
    meta = desired["metadata"]
    patch: dict[str, Any] = {
        "metadata": {
            "labels": _with_nulls(meta.get("labels"), current.get("metadata"), OPTIONAL_LABELS),
            "annotations": dict(meta.get("annotations") or {}),
        },
        "spec": copy.deepcopy(desired["spec"]),
    }
    template = patch["spec"].get("template")
    if template is not None:
        was = (current.get("spec") or {}).get("template") or {}
        template["metadata"]["labels"] = _with_nulls(
            template["metadata"].get("labels"), was.get("metadata"), OPTIONAL_LABELS
        )
        pod, old_pod = template["spec"], was.get("spec") or {}
        for name in OPTIONAL_POD_FIELDS:
            if name in old_pod and name not in pod:
                pod[name] = None
    return patch


# ------------------------------------------------------------------------------- internals


def _with_nulls(
    labels: dict[str, str] | None, old_meta: dict[str, Any] | None, optional: tuple[str, ...]
) -> dict[str, Any]:
    merged: dict[str, Any] = dict(labels or {})
    for key in optional:
        if key in ((old_meta or {}).get("labels") or {}) and key not in merged:
            merged[key] = None
    return merged


def _serve(run: SelfTaughtRun) -> ServeSpec:
    if run.spec.serve is None:
        raise ValueError(f"run {run.name} has no spec.serve: nothing to build")
    return run.spec.serve


def _hashed(manifest: dict[str, Any]) -> dict[str, Any]:
    manifest["metadata"]["annotations"] = {SPEC_HASH_ANNOTATION: spec_hash(manifest)}
    return manifest


def _container(
    run: SelfTaughtRun,
    serve: ServeSpec,
    settings: jobs.JobSettings,
    *,
    model_uri: str,
    iteration: int,
) -> dict[str, Any]:
    requests: dict[str, str] = {"cpu": serve.cpu, "memory": serve.memory}
    limits: dict[str, str] = {"memory": serve.memory}
    if serve.gpus > 0:
        requests[jobs.GPU_RESOURCE] = limits[jobs.GPU_RESOURCE] = str(serve.gpus)
    cache = run.spec.worker.model_cache
    env: list[dict[str, Any]] = [
        {"name": CACHE_ENV, "value": cache},
        {"name": "HOME", "value": jobs.TMP_PATH},
        {"name": "HF_HOME", "value": f"{cache.rstrip('/')}/huggingface"},
        {"name": "PYTHONUNBUFFERED", "value": "1"},
        {"name": "OMP_NUM_THREADS", "value": str(serve.torch_threads())},
        *jobs.storage_env(run),
    ]
    probe = {"httpGet": {"path": HEALTH_PATH, "port": PORT_NAME}}
    return {
        "name": CONTAINER_NAME,
        "image": serve.image or run.spec.worker.image or settings.worker_image,
        "imagePullPolicy": run.spec.worker.image_pull_policy,
        "command": server_command(run, serve, model_uri=model_uri, iteration=iteration),
        "env": env,
        "ports": [{"name": PORT_NAME, "containerPort": serve.port, "protocol": "TCP"}],
        # Loading may take minutes: the startup probe allows STARTUP_SECONDS, then liveness
        # restarts a server that stopped answering for a minute.
        "startupProbe": {
            **probe,
            "periodSeconds": 2,
            "failureThreshold": STARTUP_SECONDS // 2,
        },
        "readinessProbe": {**probe, "periodSeconds": 2, "failureThreshold": 3},
        "livenessProbe": {**probe, "periodSeconds": 10, "failureThreshold": 6},
        "resources": {"requests": requests, "limits": limits},
        "volumeMounts": jobs.pod_mounts(run),
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
