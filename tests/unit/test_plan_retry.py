"""Retry policy (selftaught.plan.retry): failed and stuck attempts, table-driven, then through a
simulated cluster."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from selftaught.conditions import find, parse_time
from selftaught.phases import ConditionType, FailureClass, JobState, Phase, Stage
from selftaught.plan import CreateJob, DeleteJob, ObservedJob, backoff, plan
from selftaught.plan.retry import BACKOFF_CAP_SECONDS, handle_failure, watch_active
from tests.unit.planning import T0, drive, make_run, observed, started, state_of


def condition(run, kind: ConditionType):  # type: ignore[no-untyped-def]
    return next(c for c in run.status.conditions if c.type == kind.value)


@pytest.mark.parametrize(
    ("failures", "seconds"),
    [
        pytest.param(0, 10.0, id="before-any-failure"),
        pytest.param(1, 10.0, id="first"),
        pytest.param(2, 20.0, id="second-doubles"),
        pytest.param(5, 160.0, id="fifth"),
        pytest.param(6, BACKOFF_CAP_SECONDS, id="capped"),
        pytest.param(40, BACKOFF_CAP_SECONDS, id="far-past-the-cap"),
    ],
)
def test_backoff_doubles_per_failure_up_to_the_cap(failures: int, seconds: float) -> None:
    assert backoff(failures) == seconds


def failed_select(failure: FailureClass | None) -> ObservedJob:
    return ObservedJob(
        name="demo-i0-sel-a0",
        iteration=0,
        stage=Stage.SELECT,
        attempt=0,
        state=JobState.FAILED,
        failure=failure,
        failure_message="boom",
    )


# (failure class, failures before, maxRetries) -> (phase, attempt number, failures, disruptions,
# backoff seconds or None, reason of the Event)
FAILURES: list[Any] = [
    pytest.param(
        FailureClass.PROGRAM_ERROR,
        0,
        2,
        (Phase.RUNNING, 1, 1, 0, 10.0, "StageRetrying"),
        id="program-error-retried-after-backoff",
    ),
    pytest.param(
        None,
        0,
        2,
        (Phase.RUNNING, 1, 1, 0, 10.0, "StageRetrying"),
        id="unclassified-counts-as-program-error",
    ),
    pytest.param(
        FailureClass.OUT_OF_MEMORY,
        1,
        2,
        (Phase.RUNNING, 1, 2, 0, 20.0, "StageRetrying"),
        id="second-failure-waits-twice-as-long",
    ),
    pytest.param(
        FailureClass.DEADLINE_EXCEEDED,
        2,
        2,
        (Phase.FAILED, 0, 3, 0, None, "RetriesExhausted"),
        id="budget-exhausted-fails-the-run",
    ),
    pytest.param(
        FailureClass.DISRUPTED,
        0,
        0,
        (Phase.RUNNING, 1, 0, 1, None, "StageRetrying"),
        id="disruption-is-free-and-immediate",
    ),
    pytest.param(
        FailureClass.BAD_INPUT,
        0,
        5,
        (Phase.FAILED, 0, 0, 0, None, "BadInput"),
        id="bad-input-never-retried",
    ),
]


@pytest.mark.parametrize(("failure", "before", "max_retries", "expected"), FAILURES)
def test_handle_failure(
    failure: FailureClass | None, before: int, max_retries: int, expected: tuple[Any, ...]
) -> None:
    run = started(make_run(stages={"select": {"maxRetries": max_retries}}))
    run.status.attempt.failures = before
    state = state_of(run)
    handle_failure(state, failed_select(failure))
    phase, number, failures, disruptions, delay, reason = expected
    attempt = state.status.attempt
    assert (state.status.phase, attempt.number) == (phase, number)
    assert (attempt.failures, attempt.disruptions) == (failures, disruptions)
    wait = parse_time(attempt.not_before)
    assert ((wait - T0).total_seconds() if wait else None) == delay
    assert [e.reason for e in state.out.events] == [reason]
    assert "demo-i0-sel-a0" in (attempt.last_failure or "")
    assert "boom" in (state.status.message or "")


def stuck_select(reason: str | None) -> ObservedJob:
    return ObservedJob(
        name="demo-i0-sel-a0",
        iteration=0,
        stage=Stage.SELECT,
        attempt=0,
        state=JobState.PENDING,
        stuck_reason=reason,
        stuck_message="0/4 nodes" if reason else None,
        stuck_since=T0 if reason else None,
    )


# (stuck reason, seconds waited) -> (Stalled, deleted, requeue after, attempt number after)
STUCK: list[Any] = [
    pytest.param(None, 0, ("False", False, None, 0), id="progressing"),
    pytest.param("Unschedulable", 10, ("True", False, 50.0, 0), id="stuck-within-timeout"),
    pytest.param("ImagePullBackOff", 59, ("True", False, 1.0, 0), id="image-pull-just-before"),
    pytest.param("NotAdmitted", 60, ("True", True, None, 1), id="at-timeout-replaced"),
    pytest.param("Unschedulable", 600, ("True", True, None, 1), id="long-past-timeout"),
]


@pytest.mark.parametrize(("reason", "waited", "expected"), STUCK)
def test_watch_active(reason: str | None, waited: int, expected: tuple[Any, ...]) -> None:
    run = started(make_run(stages={"select": {"pendingTimeoutSeconds": 60}}))
    state = state_of(run, now=T0 + timedelta(seconds=waited))
    watch_active(state, stuck_select(reason))
    stalled, deleted, requeue, number = expected
    found = find(state.status.conditions, ConditionType.STALLED)
    assert found is not None
    assert found.status == stalled
    assert (DeleteJob("demo-i0-sel-a0", "pending too long") in state.out.actions) == deleted
    assert state.out.requeue_after == (pytest.approx(requeue) if requeue else None)
    assert state.status.attempt.number == number


def failing_once(stage: Stage, failure: FailureClass):  # type: ignore[no-untyped-def]
    seen: set[str] = set()

    def outcome(create: CreateJob) -> ObservedJob:
        if create.task.stage is stage and create.task.iteration == 1 and not seen:
            seen.add(create.name)
            return observed(create, JobState.FAILED, failure=failure)
        return observed(create)

    return outcome


def test_failed_attempt_is_retried_under_a_new_name_after_backoff() -> None:
    run, jobs, plans = drive(make_run(), failing_once(Stage.JUDGE, FailureClass.PROGRAM_ERROR))
    assert run.status.phase == Phase.SUCCEEDED
    assert "demo-i1-judge-a0" in jobs
    assert "demo-i1-judge-a1" in jobs
    assert any(p.requeue_after == backoff(1) for p in plans)
    retry = [e for p in plans for e in p.events if e.reason == "StageRetrying"]
    assert len(retry) == 1
    assert retry[0].type == "Warning"
    assert "demo-i1-judge-a0" in retry[0].message


def test_retries_exhausted_fails_the_run_naming_stage_job_and_cause() -> None:
    def always_fail_train(create: CreateJob) -> ObservedJob:
        if create.task.stage is Stage.TRAIN:
            return observed(create, JobState.FAILED, failure=FailureClass.OUT_OF_MEMORY)
        return observed(create)

    run, jobs, _ = drive(make_run(stages={"train": {"maxRetries": 1}}), always_fail_train)
    assert run.status.phase == Phase.FAILED
    failed = condition(run, ConditionType.FAILED)
    assert failed.reason == "RetriesExhausted"
    assert "stage train" in failed.message
    assert "demo-i1-train-a1" in failed.message
    assert "OOMKilled" in failed.message
    assert [j.attempt for j in jobs.values() if j.stage is Stage.TRAIN] == [0, 1]


def test_bad_input_is_never_retried() -> None:
    run, jobs, _ = drive(make_run(), failing_once(Stage.JUDGE, FailureClass.BAD_INPUT))
    assert run.status.phase == Phase.FAILED
    assert condition(run, ConditionType.FAILED).reason == "BadInput"
    assert [j.attempt for j in jobs.values() if j.stage is Stage.JUDGE] == [0]


def test_disruptions_do_not_consume_the_retry_budget() -> None:
    run, jobs, plans = drive(
        make_run(stages={"judge": {"maxRetries": 0}}),
        failing_once(Stage.JUDGE, FailureClass.DISRUPTED),
    )
    assert run.status.phase == Phase.SUCCEEDED
    assert [j.attempt for j in jobs.values() if j.stage is Stage.JUDGE][:2] == [0, 1]
    assert all(p.requeue_after is None for p in plans)


def test_a_stuck_job_raises_stalled_then_is_replaced_after_the_pending_timeout() -> None:
    run = make_run(stages={"select": {"pendingTimeoutSeconds": 60}})
    start = plan(run, [], T0)
    run = run.model_copy(update={"status": start.status})
    stuck = observed(start.creates[0], JobState.PENDING).model_copy(
        update={"stuck_reason": "Unschedulable", "stuck_message": "0/4 nodes", "stuck_since": T0}
    )
    early = plan(run, [stuck], T0 + timedelta(seconds=10))
    assert early.actions == []
    assert early.requeue_after == pytest.approx(50)
    stalled = next(c for c in early.status.conditions if c.type == "Stalled")
    assert (stalled.status, stalled.reason) == ("True", "Unschedulable")
    assert [e.reason for e in early.events] == ["Unschedulable"]
    run = run.model_copy(update={"status": early.status})
    late = plan(run, [stuck], T0 + timedelta(seconds=61))
    assert DeleteJob("demo-i0-sel-a0", "pending too long") in late.actions
    assert late.status.attempt.number == 1
    assert late.status.attempt.failures == 1
