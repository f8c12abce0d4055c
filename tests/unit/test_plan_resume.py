"""Resume and extend policies (selftaught.plan.resume), table-driven, then through a simulated
cluster."""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

import pytest

from selftaught.api import ResumeFrom, SelfTaughtRun
from selftaught.phases import Phase, Stage
from selftaught.plan import ObservedJob, plan
from selftaught.plan.resume import apply_resume_from, maybe_extend
from tests.unit.planning import T0, drive, make_run, state_of


@cache
def _finished() -> tuple[SelfTaughtRun, tuple[ObservedJob, ...]]:
    run, jobs, _ = drive(make_run(iterations=2))
    return run, tuple(jobs.values())


def finished(**spec: Any) -> tuple[SelfTaughtRun, list[ObservedJob]]:
    """A run that completed iterations 0-2, and its Jobs (fresh copies per test)."""
    run, jobs = _finished()
    run = run.model_copy(deep=True)
    for key, value in spec.items():
        setattr(run.spec, key, value)
    return run, [j.model_copy(deep=True) for j in jobs]


# resumeFrom (iteration, stage), spec.iterations -> (position, history length, deleted Jobs)
RESUME: list[Any] = [
    pytest.param(
        (1, Stage.TRAIN),
        2,
        ((1, Stage.TRAIN, 1), 2, ["i1-eval", "i2-judge", "i2-eval", "i2-train"]),
        id="train-of-iteration-1",
    ),
    pytest.param(
        (0, Stage.EVALUATE),
        2,
        ((0, Stage.EVALUATE, 1), 1, ["i1-", "i1-", "i1-", "i2-", "i2-", "i2-"]),
        id="baseline-evaluation",
    ),
    pytest.param(
        (2, Stage.JUDGE), 2, ((2, Stage.JUDGE, 1), 3, ["i2-eval", "i2-train"]), id="last-judge"
    ),
    pytest.param((4, Stage.TRAIN), 4, ((3, Stage.JUDGE, 0), 4, []), id="beyond-history-clamps"),
]


@pytest.mark.parametrize(("request_", "iterations", "expected"), RESUME)
def test_apply_resume_from(
    request_: tuple[int, Stage], iterations: int, expected: tuple[Any, ...]
) -> None:
    run, jobs = finished(iterations=iterations)
    run.spec.resume_from = ResumeFrom(iteration=request_[0], stage=request_[1])
    state = state_of(run, jobs)
    apply_resume_from(state)
    position, history, deleted = expected
    assert state.position() == position
    assert state.phase is Phase.RUNNING
    assert len(state.status.history) == history
    names = sorted(a.name for a in state.out.deletes)
    assert len(names) == len(deleted)
    assert all(any(part in n for n in names) for part in deleted), names
    assert state.status.applied_resume_from == f"{request_[0]}/{request_[1].value}"
    assert [e.reason for e in state.out.events] == ["ResumedFrom"]


@pytest.mark.parametrize(
    "case",
    [
        pytest.param("already-applied", id="already-applied"),
        pytest.param("not-started", id="not-started"),
    ],
)
def test_resume_from_is_a_no_op_when_applied_or_not_started(case: str) -> None:
    if case == "not-started":
        run, jobs = make_run(), []
    else:
        run, jobs = finished()
        run.status.applied_resume_from = "1/train"
    run.spec.resume_from = ResumeFrom(iteration=1, stage=Stage.TRAIN)
    state = state_of(run, jobs)
    before = state.status.model_copy(deep=True)
    apply_resume_from(state)
    assert state.out.actions == []
    assert state.out.events == []
    assert state.status.applied_resume_from == "1/train"
    assert state.status.model_copy(update={"applied_resume_from": None}) == before.model_copy(
        update={"applied_resume_from": None}
    )


def test_the_same_position_resumes_again_under_a_new_request_text() -> None:
    """``request`` tells a repeat from the request already applied (kubectl selftaught retry)."""
    run, jobs = finished()
    run.status.applied_resume_from = "1/train@first"
    run.spec.resume_from = ResumeFrom(iteration=1, stage=Stage.TRAIN, request="first")
    state = state_of(run, jobs)
    apply_resume_from(state)
    assert state.out.events == []  # the same request: applied already
    run.spec.resume_from = ResumeFrom(iteration=1, stage=Stage.TRAIN, request="second")
    state = state_of(run, jobs)
    apply_resume_from(state)
    assert state.position() == (1, Stage.TRAIN, 1)  # a fresh attempt fences the old Job off
    assert state.status.applied_resume_from == "1/train@second"
    assert [e.reason for e in state.out.events] == ["ResumedFrom"]


# (phase, spec.iterations, earlyStop patience reached) -> extended to (iteration, stage)
EXTEND: list[Any] = [
    pytest.param(Phase.SUCCEEDED, 3, False, (3, Stage.JUDGE), id="raised-after-success"),
    pytest.param(Phase.SUCCEEDED, 2, False, None, id="not-raised"),
    pytest.param(Phase.FAILED, 3, False, None, id="failed-run-is-not-extended"),
    pytest.param(Phase.SUCCEEDED, 3, True, None, id="early-stopped-stays-stopped"),
]


@pytest.mark.parametrize(("phase", "iterations", "stopped", "extended"), EXTEND)
def test_maybe_extend(
    phase: Phase, iterations: int, stopped: bool, extended: tuple[int, Stage] | None
) -> None:
    run, jobs = finished(iterations=iterations)
    run.status.phase = phase
    if stopped:  # iterations 1 and 2 no better than the baseline
        run.spec.early_stop.patience = 2
        for record in run.status.history[1:]:
            record.scores["heldout"].accuracy = 0.1
    state = state_of(run, jobs)
    maybe_extend(state)
    if extended is None:
        assert state.phase is phase
        assert state.out.events == []
        return
    assert state.phase is Phase.RUNNING
    assert state.position() == (*extended, 0)
    assert [e.reason for e in state.out.events] == ["Extended"]


def test_raising_iterations_extends_a_finished_run() -> None:
    run, jobs, _ = drive(make_run(iterations=1))
    assert run.status.phase == Phase.SUCCEEDED
    run.spec.iterations = 2
    result = plan(run, list(jobs.values()), T0 + timedelta(hours=1))
    assert result.status.phase == Phase.RUNNING
    assert [c.name for c in result.creates] == ["demo-i2-judge-a0"]
    assert result.status.progress == "2/2"


def test_resume_from_rewinds_history_and_fences_a_new_attempt() -> None:
    run, jobs, _ = drive(make_run())
    run.spec.resume_from = ResumeFrom(iteration=1, stage=Stage.TRAIN)
    result = plan(run, list(jobs.values()), T0 + timedelta(hours=1))
    assert [c.name for c in result.creates] == ["demo-i1-train-a1"]
    status = result.status
    assert status.phase == Phase.RUNNING
    assert len(status.history) == 2
    assert status.history[1].judgments_kept == 30  # judge of iteration 1 is kept
    assert status.history[1].training_loss is None
    assert status.history[1].scores == {}
    run = run.model_copy(update={"status": status})
    again = plan(run, list(jobs.values()), T0 + timedelta(hours=1))
    assert [c.name for c in again.creates] == ["demo-i1-train-a1"]  # applied once only
    final, _, _ = drive(run)
    assert final.status.phase == Phase.SUCCEEDED
