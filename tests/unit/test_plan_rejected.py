"""A Job create the API server refuses (4xx) is an observation the planner answers.

Invalid (400/422: e.g. ``memory: -1Gi`` that admission let through): the run fails, naming the
stage and the API's message, with a Warning Event; no retry can fix it. Forbidden/over quota
(403) or namespace gone (404): the run waits with a doubling backoff, says so in its Stalled
condition (one Warning Event, not one per retry), and creates the Job once allowed.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from selftaught.conditions import find
from selftaught.names import job_name
from selftaught.phases import ConditionType, Phase, Reason, Stage
from selftaught.plan import CreateRejected, plan
from tests.unit.planning import T0, make_run

NAME = job_name("demo", 0, Stage.SELECT, 0)
QUOTA = 'jobs "x" is forbidden: exceeded quota: gpu, requested: requests.nvidia.com/gpu=8'


def refused(code: int, reason: str, message: str) -> CreateRejected:
    return CreateRejected(NAME, code, reason, message)


@pytest.mark.parametrize(
    "rejected",
    [
        pytest.param(refused(422, "Invalid", 'spec.memory: Invalid value: "-1Gi"'), id="422"),
        pytest.param(refused(400, "BadRequest", "json: cannot unmarshal"), id="400"),
    ],
)
def test_an_invalid_job_fails_the_run_naming_stage_and_message(rejected: CreateRejected) -> None:
    result = plan(make_run(), [], T0, rejected=rejected)
    assert result.creates == []
    assert result.status.phase == Phase.FAILED
    failed = find(result.status.conditions, ConditionType.FAILED)
    assert failed is not None
    assert failed.reason == Reason.JOB_REJECTED
    assert "stage select" in failed.message
    assert rejected.message in failed.message
    assert "not retried" in failed.message
    warnings = [e.reason for e in result.events if e.type == "Warning"]
    assert warnings == ["JobRejected"]


@pytest.mark.parametrize(
    "rejected",
    [
        pytest.param(refused(403, "Forbidden", QUOTA), id="403-quota"),
        pytest.param(refused(404, "NotFound", 'namespaces "ns" not found'), id="404-namespace"),
    ],
)
def test_a_forbidden_create_waits_with_backoff_and_says_why(rejected: CreateRejected) -> None:
    first = plan(make_run(), [], T0, rejected=rejected)
    assert first.creates == []
    assert first.status.phase == Phase.RUNNING
    stalled = find(first.status.conditions, ConditionType.STALLED)
    assert stalled is not None
    assert stalled.status == "True"
    assert stalled.reason == Reason.JOB_REJECTED
    assert rejected.message in stalled.message
    assert "stage select" in stalled.message
    assert first.requeue_after == 10.0
    assert [e.reason for e in first.events if e.type == "Warning"] == ["JobRejected"]
    assert all(e.reason != "StageStarted" for e in first.events)  # it has not started

    run = make_run().model_copy(update={"status": first.status})
    early = plan(run, [], T0 + timedelta(seconds=5))
    assert early.creates == []  # inside the backoff: no create at all

    later = T0 + timedelta(seconds=10)
    assert [c.name for c in plan(run, [], later).creates] == [NAME]  # tried again
    again = plan(run, [], later, rejected=rejected)
    assert again.requeue_after == 10.0
    assert again.events == []  # the same refusal is told once

    run = run.model_copy(update={"status": again.status})
    third = plan(run, [], T0 + timedelta(seconds=20), rejected=rejected)
    assert third.requeue_after == 20.0  # doubling: waits as long as it has waited so far
    run = run.model_copy(update={"status": third.status})
    fourth = plan(run, [], T0 + timedelta(seconds=40), rejected=rejected)
    assert fourth.requeue_after == 40.0


def test_a_refusal_of_another_name_changes_nothing() -> None:
    other = CreateRejected("someone-else", 403, "Forbidden", "no")
    assert plan(make_run(), [], T0, rejected=other) == plan(make_run(), [], T0)
