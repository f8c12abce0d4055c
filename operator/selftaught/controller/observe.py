"""Job and Pod objects -> :class:`selftaught.plan.ObservedJob`. Pure: dicts in, models out.

The planner never sees raw manifests; this module is the one place that knows how Kubernetes
reports a Job's fate. It reads:

* the Job's conditions (``Complete`` / ``Failed`` with its reason), ``startTime``,
  ``completionTime`` and ``spec.suspend``;
* each pod's phase, ``reason``, conditions (``DisruptionTarget``, ``PodScheduled``) and the
  worker container's state: exit code, ``OOMKilled``, waiting reasons, and the termination
  message -- the worker's JSON summary (< 4 KiB) on success, the error (or, through
  ``FallbackToLogsOnError``, the log tail) on failure.

A pod belongs to the Job named by its own labels (run, iteration, stage, attempt), which the
Job builder puts on the pod template; so pods of old attempts never leak into a new one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from selftaught import names
from selftaught.conditions import parse_time
from selftaught.jobs import COMPLETION_INDEX_ANNOTATION, CONTAINER_NAME, KUEUE_QUEUE_LABEL
from selftaught.phases import EXIT_BAD_INPUT, FailureClass, JobState, Reason, Stage
from selftaught.plan import ObservedJob
from selftaught.summaries import BadSummary, StageSummary
from selftaught.summaries import parse as parse_summary

#: Pod reasons (``status.reason``) that mean the node or the scheduler took the pod away.
DISRUPTION_REASONS = frozenset(
    {"Evicted", "Preempting", "Preempted", "NodeLost", "Shutdown", "Terminated", "NodeShutdown"}
)
IMAGE_PULL_REASONS = frozenset({"ImagePullBackOff", "ErrImagePull", "InvalidImageName"})
#: Cap on a failure message carried into the status (the status is read with kubectl).
MESSAGE_LIMIT = 512

Object = dict[str, Any]


def observe_jobs(
    run_name: str, jobs: Iterable[Object], pods: Iterable[Object]
) -> list[ObservedJob]:
    """Every child Job of the run that carries our labels, with its pods attached."""
    by_job: dict[str, list[Object]] = {}
    for pod in pods:
        key = _owner_job(run_name, pod)
        if key is not None:
            by_job.setdefault(key, []).append(pod)
    observed = []
    for job in jobs:
        name = job.get("metadata", {}).get("name", "")
        result = observe_job(job, by_job.get(name, []))
        if result is not None:
            observed.append(result)
    return sorted(observed, key=lambda j: j.name)


def observe_job(job: Object, pods: list[Object]) -> ObservedJob | None:
    """One Job reduced to what the planner needs; None for a Job without our labels."""
    meta = job.get("metadata", {})
    labels = meta.get("labels") or {}
    try:
        iteration = int(labels[names.LABEL_ITERATION])
        stage = Stage(labels[names.LABEL_STAGE])
        attempt = int(labels[names.LABEL_ATTEMPT])
    except (KeyError, ValueError):
        return None
    status = job.get("status") or {}
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    state = job_state(job, pods, conditions)
    failed = conditions.get("Failed")
    completed_at = status.get("completionTime") or (
        failed.get("lastTransitionTime") if failed else None
    )
    observed = ObservedJob(
        name=meta.get("name", ""),
        iteration=iteration,
        stage=stage,
        attempt=attempt,
        state=state,
        summaries=summaries(stage, pods) if state is JobState.SUCCEEDED else {},
        started_at=_time(status.get("startTime")),
        completed_at=_time(completed_at) if state.is_terminal() else None,
    )
    if state is JobState.FAILED:
        failure, message = classify_failure(failed or {}, pods)
        observed.failure, observed.failure_message = failure, message
    elif not state.is_terminal():
        stuck = stuck_reason(job, pods)
        if stuck is not None:
            observed.stuck_reason, observed.stuck_message, observed.stuck_since = stuck
    return observed


#: The parts of a Job or pod this module reads; everything else (the pod template, containers,
#: volumes, managed fields) is most of an object's size and is not kept in the operator's cache.
_KEPT_METADATA = ("name", "namespace", "uid", "labels", "annotations", "creationTimestamp")
_KEPT_SPEC = ("suspend", "completions")


def essentials(body: Mapping[str, Any]) -> Object:
    """A copy of a Job or pod reduced to what :func:`observe_jobs` reads (for the cache)."""
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    return {
        "metadata": {k: meta[k] for k in _KEPT_METADATA if k in meta},
        "spec": {k: spec[k] for k in _KEPT_SPEC if k in spec},
        "status": body.get("status") or {},
    }


def signature(body: Mapping[str, Any]) -> tuple[Any, ...]:
    """What of a Job or pod can change a plan: its end, its failure, why it is stuck.

    A Job controller and a kubelet send many updates that change none of it (ready counts,
    start and probe times, a pod going from Pending to Running: the planner waits the same for
    both); a reconcile for each would be a wasted read of the run. The handlers reconcile only
    when this changes. Everything :func:`observe_job` reads to decide a state, a failure class
    or a stuck reason is in it.
    """
    status = body.get("status") or {}
    phase = status.get("phase")
    conditions = tuple(
        sorted(
            (str(c.get("type")), str(c.get("status")), str(c.get("reason")))
            for c in status.get("conditions") or []
            if c.get("type") in _JOB_CONDITIONS or _pod_trouble(c)
        )
    )
    containers = []
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting") or {}
        if terminated is not None:
            containers.append(("terminated", terminated.get("reason"), terminated.get("exitCode")))
        elif waiting.get("reason") in IMAGE_PULL_REASONS:
            containers.append(("waiting", waiting.get("reason"), None))
    return (
        bool((body.get("spec") or {}).get("suspend")),
        phase if phase in ("Succeeded", "Failed") else None,
        status.get("reason"),
        conditions,
        tuple(containers),
    )


#: Job conditions that decide its fate (a pod's Ready and friends decide nothing here).
_JOB_CONDITIONS = frozenset({"Complete", "Failed", "FailureTarget", "Suspended"})

#: What a Job or pod looks like when nothing about it can change a plan (just created, or
#: running): the baseline an object's first event is compared with.
QUIET = (False, None, None, (), ())


def _pod_trouble(condition: Mapping[str, Any]) -> bool:
    """A pod condition that a failure class or stuck reason is read from."""
    kind, status = condition.get("type"), condition.get("status")
    if kind == "PodScheduled":
        return status != "True"
    return kind == "DisruptionTarget" and status == "True"


def summaries_missing(jobs: Iterable[Object], observed: Iterable[ObservedJob]) -> bool:
    """True when a succeeded Job has fewer pod summaries than completions.

    A Job's ``Complete`` condition and its pods' final states arrive on two watch streams, in
    no fixed order; planning from the Job alone would record the stage with no counts.
    """
    completions = {
        job.get("metadata", {}).get("name", ""): int(
            (job.get("spec") or {}).get("completions") or 1
        )
        for job in jobs
    }
    return any(
        len(job.summaries) < completions.get(job.name, 1)
        for job in observed
        if job.state is JobState.SUCCEEDED
    )


def job_state(job: Object, pods: list[Object], conditions: dict[str, Object]) -> JobState:
    if _true(conditions.get("Complete")):
        return JobState.SUCCEEDED
    if _true(conditions.get("Failed")):
        # The Job's Failed condition and its pods' final states arrive on two watch streams in
        # no fixed order. Until a pod shows how it ended, the failure cannot be classified (exit
        # 2 is bad input, not a crash to retry): the Job counts as running, and the pod's own
        # event plans again. A Job whose pods are gone (deleted at failure) is classified as is,
        # and so is a deadline: the Job's own reason says it all, its pods are being killed.
        deadline = conditions["Failed"].get("reason") == "DeadlineExceeded"
        return JobState.RUNNING if not deadline and _pods_lag(pods) else JobState.FAILED
    if (job.get("spec") or {}).get("suspend"):
        return JobState.PENDING
    if any((p.get("status") or {}).get("phase") == "Running" for p in pods):
        return JobState.RUNNING
    return JobState.PENDING


def _pods_lag(pods: list[Object]) -> bool:
    """Every pod still shown running or pending, none terminated, none being deleted."""
    return bool(pods) and all(
        (p.get("status") or {}).get("phase") in ("Running", "Pending")
        and _terminated(p) is None
        and not (p.get("metadata") or {}).get("deletionTimestamp")
        for p in pods
    )


def summaries(stage: Stage, pods: list[Object]) -> dict[int, StageSummary]:
    """The summary of each succeeded pod, keyed by completion index (shard), parsed once into
    ``stage``'s model.

    A message that is not a summary of this stage (not JSON, not an object, wrong types, another
    stage's) is left out, as a missing one is: the Job succeeded, so its counts are lost but the
    run goes on (:func:`summaries_missing` first gives a lagging pod its chance to arrive).
    """
    found: dict[int, StageSummary] = {}
    for pod in pods:
        terminated = _terminated(pod)
        if terminated is None or terminated.get("exitCode") != 0:
            continue
        parsed = _json(terminated.get("message"))
        if parsed is None:
            continue
        try:
            found[_index(pod)] = parse_summary(stage, parsed)
        except BadSummary:
            continue
    return found


def classify_failure(failed: Object, pods: list[Object]) -> tuple[FailureClass, str]:
    """Why a failed Job failed, from its condition and its pods, with a readable message."""
    if failed.get("reason") == "DeadlineExceeded":
        return FailureClass.DEADLINE_EXCEEDED, failed.get("message") or "activeDeadlineSeconds"
    ranked: list[tuple[int, FailureClass, str]] = []
    for pod in pods:
        found = _pod_failure(pod)
        if found is not None:
            ranked.append(found)
    if not ranked:
        reason = failed.get("reason") or "Failed"
        return FailureClass.PROGRAM_ERROR, f"{reason}: {failed.get('message') or 'no pod left'}"
    _, failure, message = min(ranked, key=lambda r: r[0])
    return failure, message


#: Lower rank wins when pods of one Job failed differently: bad input is never retried, so it
#: must not be hidden by a shard that happened to be evicted.
_RANK = {
    FailureClass.BAD_INPUT: 0,
    FailureClass.OUT_OF_MEMORY: 1,
    FailureClass.DEADLINE_EXCEEDED: 2,
    FailureClass.PROGRAM_ERROR: 3,
    FailureClass.DISRUPTED: 4,
}


def _pod_failure(pod: Object) -> tuple[int, FailureClass, str] | None:
    status = pod.get("status") or {}
    name = (pod.get("metadata") or {}).get("name", "pod")
    if status.get("phase") != "Failed":
        return None
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    reason = status.get("reason") or ""
    terminated = _terminated(pod) or {}
    code = terminated.get("exitCode")
    detail = _message(terminated.get("message")) or status.get("message") or ""
    if code == EXIT_BAD_INPUT:
        failure = FailureClass.BAD_INPUT
    elif terminated.get("reason") == "OOMKilled":
        failure = FailureClass.OUT_OF_MEMORY
        detail = detail or "container exceeded its memory limit"
    elif reason == "DeadlineExceeded":
        failure = FailureClass.DEADLINE_EXCEEDED
    elif _true(conditions.get("DisruptionTarget")) or reason in DISRUPTION_REASONS:
        failure = FailureClass.DISRUPTED
        detail = detail or (conditions.get("DisruptionTarget") or {}).get("message", reason)
    else:
        failure = FailureClass.PROGRAM_ERROR
    exit_text = f" exited {code}" if code is not None else ""
    message = f"pod {name}{exit_text}: {detail or failure.value}"
    return _RANK[failure], failure, message[:MESSAGE_LIMIT]


def stuck_reason(job: Object, pods: list[Object]) -> tuple[str, str, datetime | None] | None:
    """Why an unfinished Job cannot make progress, with since when; None if it can."""
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    if (job.get("spec") or {}).get("suspend") and labels.get(KUEUE_QUEUE_LABEL):
        conditions = {c.get("type"): c for c in (job.get("status") or {}).get("conditions") or []}
        since = (conditions.get("Suspended") or {}).get("lastTransitionTime")
        queue = labels[KUEUE_QUEUE_LABEL]
        return (
            Reason.NOT_ADMITTED.value,
            f"waiting for Kueue to admit it to queue {queue}",
            _time(since or meta.get("creationTimestamp")),
        )
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") != "Pending":
            continue
        pod_meta = pod.get("metadata") or {}
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("reason") == (
                "Unschedulable"
            ):
                return (
                    Reason.UNSCHEDULABLE.value,
                    condition.get("message") or "no node fits the pod",
                    _time(condition.get("lastTransitionTime") or pod_meta.get("creationTimestamp")),
                )
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in IMAGE_PULL_REASONS:
                return (
                    Reason.IMAGE_PULL.value,
                    f"{waiting['reason']}: {waiting.get('message') or container.get('image', '')}",
                    _time(pod_meta.get("creationTimestamp")),
                )
    return None


# ------------------------------------------------------------------------------- helpers


def _owner_job(run_name: str, pod: Object) -> str | None:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    try:
        return names.job_name(
            run_name,
            int(labels[names.LABEL_ITERATION]),
            Stage(labels[names.LABEL_STAGE]),
            int(labels[names.LABEL_ATTEMPT]),
        )
    except (KeyError, ValueError):
        return None


def _terminated(pod: Object) -> Object | None:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for container in statuses:
        if container.get("name") == CONTAINER_NAME or len(statuses) == 1:
            terminated = (container.get("state") or {}).get("terminated")
            if terminated is None:
                terminated = (container.get("lastState") or {}).get("terminated")
            return terminated  # type: ignore[no-any-return]
    return None


def _index(pod: Object) -> int:
    meta = pod.get("metadata") or {}
    value = (meta.get("annotations") or {}).get(COMPLETION_INDEX_ANNOTATION) or (
        meta.get("labels") or {}
    ).get(COMPLETION_INDEX_ANNOTATION)
    try:
        return int(value) if value is not None else 0
    except ValueError:
        return 0


def _json(text: str | None) -> dict[str, Any] | None:
    if not text:
        return None
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


def _message(text: str | None) -> str:
    """A failure's termination message: the summary's ``error`` if JSON, else the text's tail."""
    parsed = _json(text)
    if parsed is not None:
        return str(parsed.get("error") or parsed.get("message") or json.dumps(parsed))
    return (text or "").strip()[-MESSAGE_LIMIT:]


def _true(condition: Object | None) -> bool:
    return bool(condition) and (condition or {}).get("status") == "True"


def _time(text: str | None) -> datetime | None:
    """A Job or Pod timestamp; one the API server garbled counts as absent, not as a crash."""
    try:
        return parse_time(text)
    except ValueError:
        return None
