"""Pure builders for what the Job controller and the kubelet write: Pods and their statuses.

Kept apart from the kubelet's I/O so the rules (condition pairs, ``completedIndexes`` ranges,
backoff accounting) read in one place, in the order the real controllers apply them.
"""

from __future__ import annotations

import copy
from typing import Any

from tests.harness.pod_faults import PodFault
from tests.harness.pod_process import MESSAGE_LIMIT
from tests.harness.store import now

INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


def job_path(job: dict[str, Any]) -> str:
    meta = job["metadata"]
    return f"/apis/batch/v1/namespaces/{meta['namespace']}/jobs/{meta['name']}"


def condition(kind: str, reason: str, message: str, status: str = "True") -> dict[str, Any]:
    stamp = now()
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastProbeTime": stamp,
        "lastTransitionTime": stamp,
    }


def compress(indexes: set[int]) -> str:
    """``{0, 1, 2, 5}`` -> ``"0-2,5"``: the format of ``status.completedIndexes``."""
    ranges: list[str] = []
    for i in sorted(indexes):
        if ranges and int(ranges[-1].split("-")[-1]) == i - 1:
            ranges[-1] = f"{ranges[-1].split('-')[0]}-{i}"
        else:
            ranges.append(str(i))
    return ",".join(ranges)


def pod_manifest(job: dict[str, Any], index: int, suffix: str) -> dict[str, Any]:
    """The Pod the Job controller creates for one completion index."""
    meta, spec = job["metadata"], job["spec"]
    template = copy.deepcopy(spec.get("template") or {})
    tmeta = template.get("metadata") or {}
    indexed = spec.get("completionMode") == "Indexed"
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    labels["job-name"] = meta["name"]
    if indexed:
        labels[INDEX_LABEL] = str(index)
        annotations[INDEX_LABEL] = str(index)
    name = f"{meta['name']}-{index}-{suffix}" if indexed else f"{meta['name']}-{suffix}"
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {**(template.get("spec") or {}), "nodeName": "emulated-node"},
    }


def _container_name(pod: dict[str, Any]) -> str:
    return str(pod["spec"]["containers"][0].get("name", "main"))


def stuck_pending(pod: dict[str, Any], kind: PodFault) -> dict[str, Any]:
    if kind == PodFault.UNSCHEDULABLE:
        return {
            "phase": "Pending",
            "conditions": [
                {
                    **condition(
                        "PodScheduled",
                        "Unschedulable",
                        "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
                        status="False",
                    )
                }
            ],
        }
    waiting = {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "emulated"'}
    return {
        "phase": "Pending",
        "conditions": [condition("PodScheduled", "", "")],
        "containerStatuses": [
            {
                "name": _container_name(pod),
                "ready": False,
                "restartCount": 0,
                "image": "emulated",
                "imageID": "",
                "state": {"waiting": waiting},
            }
        ],
    }


def running(pod: dict[str, Any], started: str) -> dict[str, Any]:
    return {
        "phase": "Running",
        "startTime": started,
        "hostIP": "127.0.0.1",
        "podIP": "127.0.0.1",
        "conditions": [condition("PodScheduled", "", ""), condition("Ready", "", "")],
        "containerStatuses": [
            {
                "name": _container_name(pod),
                "ready": True,
                "restartCount": 0,
                "started": True,
                "image": "emulated",
                "imageID": "",
                "state": {"running": {"startedAt": started}},
            }
        ],
    }


def terminated(
    pod: dict[str, Any],
    exit_code: int,
    reason: str,
    message: str,
    started: str,
    finished: str,
    *,
    phase: str | None = None,
) -> dict[str, Any]:
    state = {
        "exitCode": exit_code,
        "reason": reason,
        "startedAt": started,
        "finishedAt": finished,
        "message": message.encode()[:MESSAGE_LIMIT].decode(errors="ignore"),
    }
    return {
        "phase": phase or ("Succeeded" if exit_code == 0 else "Failed"),
        "startTime": started,
        "conditions": [
            condition("PodScheduled", "", ""),
            condition("Ready", "PodCompleted", "", "False"),
        ],
        "containerStatuses": [
            {
                "name": _container_name(pod),
                "ready": False,
                "restartCount": 0,
                "image": "emulated",
                "imageID": "",
                "state": {"terminated": state},
            }
        ],
    }


def evicted(pod: dict[str, Any], started: str) -> dict[str, Any]:
    status = terminated(pod, 137, "Error", "", started, now(), phase="Failed")
    status.update(reason="Evicted", message="The node was low on resource: memory.")
    status["conditions"].append(
        condition(
            "DisruptionTarget", "TerminationByKubelet", "The node was low on resource: memory."
        )
    )
    return status


class JobTracker:
    """The Job controller's accounting for one Job run: counts, indexes, retries, conditions."""

    def __init__(self, job: dict[str, Any], *, started: str) -> None:
        spec = job["spec"]
        self.completions = int(spec.get("completions") or 1)
        self.backoff_limit = int(spec.get("backoffLimit", 6))
        self.indexed = spec.get("completionMode") == "Indexed"
        self.start_time = started
        self.active = self.succeeded = self.failed = 0
        self.completed: set[int] = set()
        self.retries: list[int] = []
        self.failed_reason = ""
        self.failed_message = ""
        self.conditions: list[dict[str, Any]] = []
        self.completion_time: str | None = None
        if any(
            c.get("type") == "Suspended" for c in (job.get("status") or {}).get("conditions") or []
        ):
            self.conditions.append(
                condition("Suspended", "JobResumed", "Job resumed", status="False")
            )

    def indexes(self) -> range:
        return range(self.completions)

    def started(self, index: int) -> None:
        self.active += 1

    def ended(self, index: int, ok: bool) -> None:
        self.active -= 1
        if ok:
            self.succeeded += 1
            self.completed.add(index)
            return
        self.failed += 1
        if self.failed > self.backoff_limit:
            self.fail("BackoffLimitExceeded", "Job has reached the specified backoff limit")
        else:
            self.retries.append(index)

    def retry_queue(self) -> list[int]:
        queued, self.retries = self.retries, []
        return queued

    def fail(self, reason: str, message: str) -> None:
        if not self.failed_reason:
            self.failed_reason, self.failed_message = reason, message

    def finish(self, finished: str) -> None:
        """Set the terminal condition pair, as the Job controller does since Kubernetes 1.31."""
        self.active = 0
        if self.failed_reason:
            self.conditions += [
                condition("FailureTarget", self.failed_reason, self.failed_message),
                condition("Failed", self.failed_reason, self.failed_message),
            ]
        elif self.succeeded >= self.completions:
            message = "Reached expected number of succeeded pods"
            self.conditions += [
                condition("SuccessCriteriaMet", "CompletionsReached", message),
                condition("Complete", "CompletionsReached", message),
            ]
            self.completion_time = finished

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {
            "startTime": self.start_time,
            "active": self.active,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "ready": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        }
        if self.conditions:
            status["conditions"] = self.conditions
        if self.indexed:
            status["completedIndexes"] = compress(self.completed)
        if self.completion_time:
            status["completionTime"] = self.completion_time
        return status
