"""Carry out a plan: create and delete Jobs, write the status once, then send the Events.

The order is the contract of :mod:`selftaught.plan`:

1. actions first -- a create whose Job exists is success (the names are deterministic), a delete
   of a missing Job is success, so a crash anywhere here converges on the next reconcile;
2. the status, once, only if it changed, as a JSON merge patch guarded by the resourceVersion
   the plan was computed from (a concurrent writer gets a 409 and we plan again);
3. Events only after the status write succeeded, so a retried reconcile never tells the story
   twice.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from selftaught.api import API_VERSION, KIND, SelfTaughtRun
from selftaught.conditions import rfc3339
from selftaught.controller.kube import ApiError, KubeApi
from selftaught.jobs import JobSettings, build_job, build_service
from selftaught.plan import CreateJob, CreateRejected, DeleteJob, Event, Plan

log = logging.getLogger(__name__)
COMPONENT = "selftaught-operator"
_sequence = itertools.count()

Object = dict[str, Any]


@dataclass
class Applied:
    """What one apply did, for metrics and logs."""

    created: list[CreateJob] = field(default_factory=list)
    #: The Jobs as the API server returned them (what the watch will deliver a moment later).
    jobs: list[Object] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    status_written: bool = False
    #: The run's resourceVersion after the status write (None without one).
    resource_version: str | None = None
    events: int = 0
    #: The run's deletion was observed mid-apply: the rest of the plan was dropped.
    abandoned: bool = False
    #: The API server refused a create (4xx); nothing after it was applied.
    rejected: CreateRejected | None = None


def apply_plan(
    api: KubeApi,
    run: SelfTaughtRun,
    raw_status: Object,
    result: Plan,
    *,
    job_settings: JobSettings,
    now: datetime,
    may_create: Callable[[], bool] = lambda: True,
) -> Applied:
    """Apply ``result`` to the cluster; raises :class:`~.kube.Conflict` if the run moved on.

    ``may_create`` is asked right before each create: the run's deletion may have been observed
    while this plan was made, and then nothing is created, nothing written, nothing told.
    """
    applied = Applied()
    for action in result.actions:
        if isinstance(action, CreateJob):
            if not may_create():
                log.info("run %s/%s is being deleted: no Job %s", run.namespace, run.name,
                         action.name)  # fmt: skip
                applied.abandoned = True
                return applied
            try:
                service = build_service(run, action, operator_settings=job_settings)
                if service is not None:
                    api.create(service)
                job = api.create(build_job(run, action, operator_settings=job_settings))
            except ApiError as error:
                if not refusal(error):
                    raise
                applied.rejected = CreateRejected(
                    action.name, error.status, error.reason, error.message
                )
                return applied  # the caller plans again with this observation
            if job is not None:
                applied.created.append(action)
                applied.jobs.append(job)
        elif isinstance(action, DeleteJob):
            if api.delete_job(run.namespace, action.name):
                log.info("deleted Job %s/%s: %s", run.namespace, action.name, action.reason)
            applied.deleted.append(action.name)
    new_status = result.status.dump()
    patch = merge_patch(raw_status, new_status)
    if patch:
        body = {
            "metadata": {"resourceVersion": run.metadata.get("resourceVersion")},
            "status": patch,
        }
        written = api.patch_run_status(run.namespace, run.name, body)
        applied.status_written = True
        applied.resource_version = (written.get("metadata") or {}).get("resourceVersion")
    for event in result.events:
        try:
            api.create(event_manifest(run, event, now=now))
            applied.events += 1
        except Exception:  # an Event is best effort: never fail the reconcile for it
            log.warning("could not post event %s on %s/%s", event.reason, run.namespace, run.name)
    return applied


def refusal(error: ApiError) -> bool:
    """A 4xx that retrying the same request at once will not cure (not 409, not 429)."""
    return 400 <= error.status < 500 and error.status not in (409, 429)


def merge_patch(old: Any, new: Any) -> Object:
    """RFC 7386 patch turning ``old`` into ``new`` (removed keys become null; lists replaced)."""
    if not isinstance(old, dict) or not isinstance(new, dict):
        raise TypeError("merge_patch compares two objects")
    patch: Object = {}
    for key in old.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        before = old.get(key)
        if isinstance(value, dict) and isinstance(before, dict):
            nested = merge_patch(before, value)
            if nested:
                patch[key] = nested
        elif key not in old or before != value:
            patch[key] = value
    return patch


def event_manifest(run: SelfTaughtRun, event: Event, *, now: datetime) -> Object:
    """A core/v1 Event on the run (what ``kubectl describe`` lists)."""
    stamp = rfc3339(now)
    suffix = f"{time.time_ns():x}{next(_sequence) % 4096:03x}"
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{run.name}.{suffix}"[:253], "namespace": run.namespace},
        "involvedObject": {
            "apiVersion": API_VERSION,
            "kind": KIND,
            "name": run.name,
            "namespace": run.namespace,
            "uid": run.uid,
            "resourceVersion": run.metadata.get("resourceVersion"),
        },
        "type": event.type,
        "reason": event.reason,
        "message": event.message[:1024],
        "source": {"component": COMPONENT},
        "reportingComponent": f"selftaught.dev/{COMPONENT}",
        "reportingInstance": os.environ.get("HOSTNAME", COMPONENT)[:128],
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }
