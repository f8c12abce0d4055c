"""Suspend policy (selftaught.plan.suspend): pause at a stage boundary, table-driven, then
through a simulated cluster."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from selftaught.conditions import find
from selftaught.phases import ConditionType, JobState, Phase, Stage
from selftaught.plan import plan
from selftaught.plan.suspend import hold_at_boundary, stage_shown
from tests.unit.planning import T0, make_run, observed, started, state_of

# (spec.suspend, phase before) -> (held, phase after, Suspended condition, Event reasons)
BOUNDARY: list[Any] = [
    pytest.param(False, Phase.RUNNING, (False, Phase.RUNNING, None, []), id="running-goes-on"),
    pytest.param(
        True, Phase.RUNNING, (True, Phase.SUSPENDED, "True", ["Suspended"]), id="suspend-requested"
    ),
    pytest.param(True, Phase.SUSPENDED, (True, Phase.SUSPENDED, None, []), id="stays-suspended"),
    pytest.param(
        False, Phase.SUSPENDED, (False, Phase.RUNNING, "False", ["Resumed"]), id="resume-requested"
    ),
]


@pytest.mark.parametrize(("suspend", "before", "expected"), BOUNDARY)
def test_hold_at_boundary(suspend: bool, before: Phase, expected: tuple[Any, ...]) -> None:
    run = started(make_run(), phase=before)
    run.spec.suspend = suspend
    state = state_of(run)
    held, after, condition, reasons = expected
    assert hold_at_boundary(state) is held
    assert state.status.phase == after
    found = find(state.status.conditions, ConditionType.SUSPENDED)
    assert (found.status if found else None) == condition
    assert [e.reason for e in state.out.events] == reasons


def test_suspend_before_start_creates_nothing_until_resumed() -> None:
    run = make_run(suspend=True)
    first = plan(run, [], T0)
    assert first.creates == []
    assert first.status.phase == Phase.SUSPENDED
    run = run.model_copy(update={"status": first.status})
    run.spec.suspend = False
    second = plan(run, [], T0)
    assert [c.name for c in second.creates] == ["demo-i0-sel-a0"]
    assert second.status.phase == Phase.RUNNING
    assert [e.reason for e in second.events] == ["StageStarted"]
    assert second.events[0].message.startswith("resumed; ")


def test_suspend_lets_the_running_stage_finish_then_stops_at_the_boundary() -> None:
    run = make_run()
    start = plan(run, [], T0)
    run = run.model_copy(update={"status": start.status})
    run.spec.suspend = True
    running = observed(start.creates[0], JobState.RUNNING)
    middle = plan(run, [running], T0)
    assert middle.actions == []  # not deleted, nothing new
    run = run.model_copy(update={"status": middle.status})
    done = observed(start.creates[0])
    after = plan(run, [done], T0 + timedelta(seconds=9))
    assert after.creates == []
    assert after.status.phase == Phase.SUSPENDED
    assert after.status.stage == Stage.PAIRS
    assert after.status.stage_shown == "paused after select"  # the STAGE column


@pytest.mark.parametrize(
    ("phase", "iteration", "stage", "shown"),
    [
        pytest.param(Phase.RUNNING, 1, Stage.TRAIN, "train", id="running-shows-the-stage"),
        pytest.param(Phase.SUSPENDED, 1, Stage.TRAIN, "paused after judge", id="paused-mid"),
        pytest.param(Phase.SUSPENDED, 1, Stage.JUDGE, "paused after evaluate", id="paused-iter"),
        pytest.param(Phase.SUSPENDED, 0, Stage.SELECT, "paused before select", id="paused-start"),
        pytest.param(Phase.PENDING, 0, None, None, id="not-started"),
    ],
)
def test_stage_shown(phase: Phase, iteration: int, stage: Stage | None, shown: str | None) -> None:
    assert stage_shown(phase, iteration, stage) == shown
