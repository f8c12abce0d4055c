"""Carry out the serving decision: keep the judge's Deployment and Service as built, read the
Deployment back into the run's status.

Idempotent and cheap on the steady path: one GET of each object, and a write only when the
desired object changed. Each object carries a hash of what the operator built
(:data:`selftaught.serving_manifests.SPEC_HASH_ANNOTATION`); a missing object is created, one
whose hash differs gets one JSON merge patch to what is built now
(:func:`~selftaught.serving_manifests.update_patch`: optional fields dropped from the spec are
nulled; the pod template changes only when the best judge does: one patch, one rollout per
change of best), one with the current hash is left alone. ``spec.serve`` removed: both are
deleted. A deleted run takes them with it through their owner reference (the API server's
garbage collector).

Runs without ``spec.serve`` that never served cost nothing here: no request at all.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote

from selftaught import names, serving_manifests
from selftaught.api import SelfTaughtRun
from selftaught.controller.kube import ApiError, KubeApi
from selftaught.jobs import JobSettings
from selftaught.plan import Plan
from selftaught.plan.serving import (
    DeploymentView,
    ServingDecision,
    ServingTarget,
    decide,
    record_serving,
)

log = logging.getLogger(__name__)
Object = dict[str, Any]

_PATHS = {
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments/{name}",
    "Service": "/api/v1/namespaces/{ns}/services/{name}",
}


def sync_serving(
    api: KubeApi,
    run: SelfTaughtRun,
    result: Plan,
    *,
    job_settings: JobSettings,
    now: datetime,
    may_create: Callable[[], bool] = lambda: True,
) -> None:
    """Make the cluster serve what :func:`~selftaught.plan.serving.decide` says, then record
    it in ``result.status`` (written with the rest of the status) and ``result.events``."""
    decision = decide(run.spec, result.status)
    if decision.idle and run.spec.serve is None:
        return
    name = names.serving_name(run.name)
    view = None
    if decision.remove:
        for kind in ("Deployment", "Service"):
            if _delete(api, kind, run.namespace, name):
                log.info("deleted %s %s/%s: spec.serve was removed", kind, run.namespace, name)
    elif decision.target is not None and may_create():
        target = decision.target
        deployment = serving_manifests.build_deployment(
            run,
            model_uri=target.model_uri,
            iteration=target.iteration,
            operator_settings=job_settings,
        )
        applied = ensure(api, deployment)
        ensure(api, serving_manifests.build_service(run))
        view = deployment_view(applied)
    serve = run.spec.serve
    events = record_serving(
        result.status,
        spec=run.spec,
        decision=decision,
        view=view,
        endpoint=serving_manifests.endpoint(run, serve) if serve else None,
        service=name if serve else None,
        generation=run.generation,
        now=now,
    )
    result.events.extend(events)


def ensure(api: KubeApi, manifest: Object) -> Object:
    """The object as ``manifest`` says, created or patched only when needed; returns it as the
    API server has it now."""
    kind, meta = manifest["kind"], manifest["metadata"]
    path = _path(kind, meta["namespace"], meta["name"])
    wanted = meta["annotations"][serving_manifests.SPEC_HASH_ANNOTATION]
    current = _get(api, path)
    if current is None:
        created = api.request("POST", path.rsplit("/", 1)[0], body=manifest)
        log.info("created %s %s/%s", kind, meta["namespace"], meta["name"])
        return created
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    if annotations.get(serving_manifests.SPEC_HASH_ANNOTATION) == wanted:
        return current
    patch = serving_manifests.update_patch(current, manifest)
    patched = api.request("PATCH", path, body=patch, content_type="application/merge-patch+json")
    log.info("patched %s %s/%s (spec hash %s)", kind, meta["namespace"], meta["name"], wanted)
    return patched


def deployment_view(deployment: Object) -> DeploymentView:
    """What :func:`~selftaught.plan.serving.record_serving` reads of a Deployment."""
    meta = deployment.get("metadata") or {}
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    annotations = ((spec.get("template") or {}).get("metadata") or {}).get("annotations") or {}
    uri = annotations.get(serving_manifests.MODEL_ANNOTATION)
    iteration = annotations.get(serving_manifests.ITERATION_ANNOTATION)
    serves = None
    if uri and str(iteration).isdigit():
        serves = ServingTarget(str(uri), int(str(iteration)))
    return DeploymentView(
        serves=serves,
        replicas=int(spec.get("replicas", 1)),
        ready_replicas=int(status.get("readyReplicas") or 0),
        updated_replicas=int(status.get("updatedReplicas") or 0),
        total_replicas=int(status.get("replicas") or 0),
        observed=int(status.get("observedGeneration") or 0) >= int(meta.get("generation") or 1),
    )


def _path(kind: str, namespace: str, name: str) -> str:
    return _PATHS[kind].format(ns=quote(namespace), name=quote(name))


def _get(api: KubeApi, path: str) -> Object | None:
    try:
        return api.request("GET", path)
    except ApiError as error:
        if error.status == 404:
            return None
        raise


def _delete(api: KubeApi, kind: str, namespace: str, name: str) -> bool:
    """Delete with background propagation (the Deployment's pods go too); False if gone."""
    try:
        api.request(
            "DELETE", _path(kind, namespace, name), body={"propagationPolicy": "Background"}
        )
    except ApiError as error:
        if error.status == 404:
            return False
        raise
    return True


__all__ = ["ServingDecision", "deployment_view", "ensure", "sync_serving"]
