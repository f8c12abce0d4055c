"""Observation: Job + Pod objects -> ObservedJob, table-driven, plus the shell's pure helpers
(merge patch, failure accounting) and the reconcile queue's guarantees."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from selftaught.api import RunStatus
from selftaught.controller.apply import merge_patch
from selftaught.controller.observe import (
    QUIET,
    essentials,
    observe_job,
    observe_jobs,
    signature,
    summaries_missing,
)
from selftaught.controller.queue import Key, WorkQueue
from selftaught.controller.reconcile import consumed_failure
from selftaught.phases import FailureClass, JobState, Stage
from selftaught.plan import ObservedJob
from selftaught.summaries import JudgeSummary

T = "2026-01-01T00:00:00Z"
LABELS = {
    "app.kubernetes.io/managed-by": "selftaught-operator",
    "selftaught.dev/run": "demo",
    "selftaught.dev/run-uid": "uid-1",
    "selftaught.dev/iteration": "1",
    "selftaught.dev/stage": "judge",
    "selftaught.dev/attempt": "0",
}


def job(*conditions: tuple[str, str], suspend: bool = False, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "demo-i1-judge-a0",
            "labels": {**LABELS, **labels},
            "creationTimestamp": T,
        },
        "spec": {"suspend": suspend},
        "status": {
            "startTime": T,
            "completionTime": "2026-01-01T00:01:00Z" if ("Complete", "") in conditions else None,
            "conditions": [
                {"type": t, "status": "True", "reason": r, "message": f"{r} msg",
                 "lastTransitionTime": "2026-01-01T00:01:00Z"}
                for t, r in conditions
            ],
        },
    }  # fmt: skip


def pod(
    phase: str,
    *,
    index: int = 0,
    exit_code: int | None = None,
    message: str = "",
    reason: str | None = None,
    terminated_reason: str = "Error",
    waiting: str | None = None,
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    state: dict[str, Any] = {}
    if exit_code is not None:
        state = {
            "terminated": {
                "exitCode": exit_code,
                "message": message,
                "reason": "Completed" if exit_code == 0 else terminated_reason,
            }
        }
    elif waiting:
        state = {"waiting": {"reason": waiting, "message": "back-off pulling image"}}
    status: dict[str, Any] = {
        "phase": phase,
        "containerStatuses": [{"name": "worker", "state": state, "image": "img:1"}],
        "conditions": conditions or [],
    }
    if reason:
        status["reason"] = reason
    return {
        "metadata": {
            "name": f"demo-i1-judge-a0-{index}-abcde",
            "labels": dict(LABELS),
            "annotations": {"batch.kubernetes.io/job-completion-index": str(index)},
            "creationTimestamp": T,
        },
        "status": status,
    }  # fmt: skip


SUMMARY = {"pairs": 40, "sampled": 160, "kept": 30}
#: SUMMARY as the planner sees it: parsed once, into the Job's stage's model.
PARSED = JudgeSummary(pairs=40, sampled=160, kept=30)

CASES = [
    pytest.param(job(), [pod("Pending")], JobState.PENDING, None, None, id="created"),
    pytest.param(job(), [pod("Running")], JobState.RUNNING, None, None, id="running"),
    pytest.param(
        job(("Complete", "")),
        [pod("Succeeded", exit_code=0, message=json.dumps(SUMMARY))],
        JobState.SUCCEEDED, None, None, id="succeeded",
    ),
    pytest.param(
        job(("Failed", "PodFailurePolicy")),
        [pod("Failed", exit_code=2, message='{"error": "line 3: no instruction"}')],
        JobState.FAILED, FailureClass.BAD_INPUT, "line 3: no instruction", id="bad-input",
    ),
    pytest.param(
        job(("Failed", "BackoffLimitExceeded")),
        [pod("Failed", exit_code=137, terminated_reason="OOMKilled")],
        JobState.FAILED, FailureClass.OUT_OF_MEMORY, "memory limit", id="oom",
    ),
    pytest.param(
        job(("Failed", "DeadlineExceeded")), [pod("Running")],
        JobState.FAILED, FailureClass.DEADLINE_EXCEEDED, "DeadlineExceeded msg", id="deadline",
    ),
    pytest.param(
        job(("Failed", "BackoffLimitExceeded")),
        [pod("Failed", reason="Evicted", conditions=[
            {"type": "DisruptionTarget", "status": "True", "message": "node drained"}])],
        JobState.FAILED, FailureClass.DISRUPTED, "node drained", id="evicted",
    ),
    pytest.param(
        job(("Failed", "BackoffLimitExceeded")),
        [pod("Failed", exit_code=1, message="Traceback ...\nRuntimeError: CUDA error")],
        JobState.FAILED, FailureClass.PROGRAM_ERROR, "CUDA error", id="program-error-log-tail",
    ),
    pytest.param(
        job(("Failed", "BackoffLimitExceeded")),
        [pod("Failed", index=0, reason="Evicted"),
         pod("Failed", index=1, exit_code=2, message='{"error": "bad"}')],
        JobState.FAILED, FailureClass.BAD_INPUT, "bad", id="bad-input-beats-eviction",
    ),
    pytest.param(
        job(("Failed", "BackoffLimitExceeded")), [],
        JobState.FAILED, FailureClass.PROGRAM_ERROR, "BackoffLimitExceeded msg", id="pods-gone",
    ),
    pytest.param(  # the Job's watch event came first: wait for the pod to say how it ended
        job(("Failed", "PodFailurePolicy")), [pod("Running")],
        JobState.RUNNING, None, None, id="failed-job-whose-pod-lags",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("job_obj", "pods", "state", "failure", "message"), CASES)
def test_observe_job(
    job_obj: dict[str, Any],
    pods: list[dict[str, Any]],
    state: JobState,
    failure: FailureClass | None,
    message: str | None,
) -> None:
    observed = observe_job(job_obj, pods)
    assert observed is not None
    assert (observed.iteration, observed.stage, observed.attempt) == (1, Stage.JUDGE, 0)
    assert observed.state is state
    assert observed.failure is failure
    if message is not None:
        assert observed.failure_message is not None
        assert message in observed.failure_message
    if state is JobState.SUCCEEDED:
        assert observed.summaries == {0: PARSED}
        assert observed.completed_at == datetime(2026, 1, 1, 0, 1, tzinfo=UTC)


def test_summaries_per_shard() -> None:
    pods = [
        pod("Succeeded", index=i, exit_code=0, message=json.dumps({"kept": i})) for i in range(3)
    ]
    pods.append(pod("Failed", index=1, reason="Evicted"))  # a replaced shard leaves no summary
    observed = observe_job(job(("Complete", "")), pods)
    assert observed is not None
    assert observed.summaries == {i: JudgeSummary(kept=i) for i in range(3)}
    assert [s.kept for s in observed.summaries.values()] == [0, 1, 2]


@pytest.mark.parametrize(
    "message",
    [
        pytest.param("not json", id="not-json"),
        pytest.param("[1, 2]", id="not-an-object"),
        pytest.param('{"kept": "many"}', id="wrong-type"),
        pytest.param('{"stage": "train", "loss": 0.1}', id="another-stage"),
    ],
)
def test_a_message_that_is_no_summary_of_the_stage_is_left_out(message: str) -> None:
    pods = [
        pod("Succeeded", index=0, exit_code=0, message=message),
        pod("Succeeded", index=1, exit_code=0, message=json.dumps({**SUMMARY, "future": 1})),
    ]
    observed = observe_job(job(("Complete", "")), pods)
    assert observed is not None
    assert observed.summaries == {1: PARSED}  # an unknown key is no reason to drop a summary


def test_the_cached_essentials_observe_like_the_whole_objects() -> None:
    jobs = [job(("Complete", "")), job(suspend=True, **{"kueue.x-k8s.io/queue-name": "q"})]
    jobs[1]["metadata"]["name"] = "demo-i1-judge-a1"
    jobs[1]["metadata"]["labels"]["selftaught.dev/attempt"] = "1"
    for body in jobs:
        body["spec"]["template"] = {"spec": {"containers": [{"env": [{"name": "X"}] * 50}]}}
    pods = [pod("Succeeded", exit_code=0, message=json.dumps(SUMMARY))]
    slim = ([essentials(j) for j in jobs], [essentials(p) for p in pods])
    assert "template" not in slim[0][0]["spec"]
    assert observe_jobs("demo", *slim) == observe_jobs("demo", jobs, pods)


def test_only_changes_a_plan_can_see_change_the_signature() -> None:
    running = job()
    counted = job()
    counted["status"].update(active=1, ready=1, startTime="2026-01-01T00:00:30Z")
    assert signature(counted) == signature(running)  # counters and times: no reconcile
    assert signature(job(("Complete", ""))) != signature(running)
    assert signature(job(suspend=True)) != signature(running)
    started = pod("Running")
    assert signature(pod("Pending")) == signature(started)  # the planner waits the same
    assert signature(pod("Succeeded", exit_code=0)) != signature(pod("Failed", exit_code=1))
    assert signature(pod("Pending", waiting="ImagePullBackOff")) != signature(pod("Pending"))
    assert signature(pod("Pending")) == signature({}) == QUIET  # a new pod: nothing to plan
    unschedulable = pod("Pending", conditions=[{"type": "PodScheduled", "status": "False",
                                               "reason": "Unschedulable"}])  # fmt: skip
    assert signature(unschedulable) != QUIET
    probed = pod("Running")
    probed["status"]["containerStatuses"][0]["restartCount"] = 0
    probed["status"]["podIP"] = "10.0.0.7"
    assert signature(probed) == signature(started)


def test_a_finished_job_whose_pods_lag_has_summaries_missing() -> None:
    """The Job's Complete and its pods' exits come on two watches: plan only with both."""
    done = job(("Complete", ""))
    done["spec"]["completions"] = 2
    one = [pod("Succeeded", index=0, exit_code=0, message=json.dumps({"kept": 0}))]
    both = [*one, pod("Succeeded", index=1, exit_code=0, message=json.dumps({"kept": 1}))]
    assert summaries_missing([done], observe_jobs("demo", [done], one))
    assert not summaries_missing([done], observe_jobs("demo", [done], both))
    running = job()
    assert not summaries_missing([running], observe_jobs("demo", [running], []))


STUCK = [
    pytest.param(
        job(suspend=True, **{"kueue.x-k8s.io/queue-name": "team-a"}), [],
        "NotAdmitted", "team-a", id="kueue-not-admitted",
    ),
    pytest.param(
        job(), [pod("Pending", conditions=[{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/3 nodes have nvidia.com/gpu", "lastTransitionTime": T}])],
        "Unschedulable", "nvidia.com/gpu", id="unschedulable",
    ),
    pytest.param(
        job(), [pod("Pending", waiting="ImagePullBackOff")],
        "ImagePullBackOff", "back-off", id="image-pull",
    ),
    pytest.param(job(suspend=True), [], None, None, id="suspended-without-queue-is-not-stuck"),
    pytest.param(job(), [pod("Running")], None, None, id="running-is-not-stuck"),
]  # fmt: skip


@pytest.mark.parametrize(("job_obj", "pods", "reason", "message"), STUCK)
def test_stuck_reasons(
    job_obj: dict[str, Any], pods: list[dict[str, Any]], reason: str | None, message: str | None
) -> None:
    observed = observe_job(job_obj, pods)
    assert observed is not None
    assert observed.stuck_reason == reason
    if message is not None:
        assert observed.stuck_message is not None
        assert message in observed.stuck_message
        assert observed.stuck_since == datetime(2026, 1, 1, tzinfo=UTC)


def test_pods_are_matched_to_their_own_attempt() -> None:
    other = pod("Succeeded", exit_code=0, message=json.dumps({"kept": 99}))
    other["metadata"]["labels"]["selftaught.dev/attempt"] = "1"
    mine = pod("Succeeded", exit_code=0, message=json.dumps(SUMMARY))
    stranger = {"metadata": {"name": "x", "labels": {}}, "status": {}}
    observed = observe_jobs("demo", [job(("Complete", ""))], [other, mine, stranger])
    assert [o.summaries for o in observed] == [{0: PARSED}]


def test_foreign_job_is_ignored() -> None:
    assert observe_job({"metadata": {"name": "x", "labels": {}}}, []) is None


# --------------------------------------------------------------------- the shell's helpers


@pytest.mark.parametrize(
    ("old", "new", "patch"),
    [
        pytest.param({"a": 1}, {"a": 1}, {}, id="unchanged"),
        pytest.param({"a": 1}, {"a": 2}, {"a": 2}, id="changed"),
        pytest.param({"a": 1, "b": 2}, {"a": 1}, {"b": None}, id="removed-is-null"),
        pytest.param({"x": {"y": 1, "z": 2}}, {"x": {"y": 1}}, {"x": {"z": None}}, id="nested"),
        pytest.param({"l": [1, 2]}, {"l": [1]}, {"l": [1]}, id="lists-replaced"),
    ],
)
def test_merge_patch(old: dict[str, Any], new: dict[str, Any], patch: dict[str, Any]) -> None:
    assert merge_patch(old, new) == patch


def observed(state: JobState, **extra: Any) -> ObservedJob:
    return ObservedJob(
        name="demo-i1-train-a0", iteration=1, stage=Stage.TRAIN, attempt=0, state=state, **extra
    )


def at(attempt: int, phase: str = "Running") -> RunStatus:
    return RunStatus.model_validate(
        {"phase": phase, "stage": "train", "iteration": 1, "attempt": {"number": attempt}}
    )


@pytest.mark.parametrize(
    ("old", "new", "jobs", "expected"),
    [
        pytest.param(at(0), at(1), [observed(JobState.FAILED, failure="OOMKilled")],
                     (Stage.TRAIN, "OOMKilled"), id="retried"),
        pytest.param(at(0), at(0, "Failed"), [observed(JobState.FAILED, failure="BadInput")],
                     (Stage.TRAIN, "BadInput"), id="failed-run"),
        pytest.param(at(0), at(1), [observed(JobState.PENDING, stuck_reason="Unschedulable")],
                     (Stage.TRAIN, "Unschedulable"), id="stuck-too-long"),
        pytest.param(at(0), at(0), [observed(JobState.FAILED, failure="OOMKilled")], None,
                     id="not-yet-handled"),
        pytest.param(at(0), at(1), [observed(JobState.SUCCEEDED)], None, id="succeeded"),
    ],
)  # fmt: skip
def test_consumed_failure(
    old: RunStatus, new: RunStatus, jobs: list[ObservedJob], expected: tuple[Stage, str] | None
) -> None:
    assert consumed_failure("demo", old, new, jobs) == expected


def test_queue_serialises_and_collapses_triggers() -> None:
    """One reconcile per key at a time; triggers during one collapse into a single rerun."""

    async def scenario() -> tuple[list[Key], int]:
        calls: list[Key] = []
        running = 0
        overlap = 0
        gate = asyncio.Event()

        async def reconcile(key: Key, fresh: bool, routine: bool) -> float | None:
            nonlocal running, overlap
            running += 1
            overlap = max(overlap, running)
            calls.append(key)
            if len(calls) == 1:
                await gate.wait()
            running -= 1
            return None

        queue = WorkQueue(reconcile, workers=4)
        queue.start()
        key = ("ns", "a")
        queue.add(key)
        await asyncio.sleep(0.01)
        for _ in range(5):  # arrive while the first reconcile runs
            queue.add(key)
        gate.set()
        await asyncio.sleep(0.05)
        await queue.stop(timeout=1)
        return calls, overlap

    calls, overlap = asyncio.run(scenario())
    assert calls == [("ns", "a"), ("ns", "a")]
    assert overlap == 1


def test_queue_requeues_after_delay_and_backs_off_errors() -> None:
    """A retry after a failed reconcile reads fresh from the API; planned requeues do not."""

    async def scenario() -> list[tuple[str, bool]]:
        seen: list[tuple[str, bool]] = []

        async def reconcile(key: Key, fresh: bool, routine: bool) -> float | None:
            seen.append((key[1], fresh))
            count = sum(name == key[1] for name, _ in seen)
            if key[1] == "boom" and count == 1:
                raise RuntimeError("transient")
            return 0.05 if count == 1 else None

        queue = WorkQueue(reconcile, workers=2, error_backoff=(0.05,))
        queue.start()
        queue.add(("ns", "ok"))
        queue.add(("ns", "boom"))
        await asyncio.sleep(0.3)
        await queue.stop(timeout=1)
        return seen

    seen = asyncio.run(scenario())
    # once from the trigger, then once more after its requeue_after
    assert [fresh for name, fresh in seen if name == "ok"] == [False, False]
    # failed, retried after the error backoff, then done
    assert [fresh for name, fresh in seen if name == "boom"] == [False, True]


def test_queue_takes_triggered_keys_before_due_requeues() -> None:
    """A watch event's key jumps the resyncs that came due before it (a hand-off must not wait
    behind a minute's worth of safety-net reconciles); a queued resync that gets a trigger is
    promoted."""

    async def scenario() -> list[tuple[str, bool]]:
        order: list[tuple[str, bool]] = []
        gate = asyncio.Event()

        async def reconcile(key: Key, fresh: bool, routine: bool) -> float | None:
            order.append((key[1], routine))
            if key[1] == "busy":
                await gate.wait()
            return None

        queue = WorkQueue(reconcile, workers=1)
        queue.start()
        queue.add(("ns", "busy"))  # occupies the only worker
        for name in ("resync-1", "resync-2", "promoted"):
            queue.add(("ns", name), after=0.01)
        await asyncio.sleep(0.05)  # all three came due: routine
        queue.add(("ns", "event"))
        queue.add(("ns", "promoted"))
        assert queue.depth == 4
        gate.set()
        await asyncio.sleep(0.05)
        await queue.stop(timeout=1)
        return order

    assert asyncio.run(scenario()) == [
        ("busy", False),
        ("event", False),
        ("promoted", False),
        ("resync-1", True),
        ("resync-2", True),
    ]
