"""Best-iteration and early-stop policies (selftaught.plan.best), table-driven, then through a
simulated cluster."""

from __future__ import annotations

from typing import Any

import pytest

from selftaught.phases import ConditionType, Phase, Stage
from selftaught.plan import CreateJob, ObservedJob
from selftaught.plan.best import early_stopped, update_best
from selftaught.summaries import EvaluateSummary, SetScores
from tests.unit.planning import drive, make_run, observed, started, state_of


def condition(run, kind: ConditionType):  # type: ignore[no-untyped-def]
    return next(c for c in run.status.conditions if c.type == kind.value)


# accuracies of iterations 0.. (None: not evaluated) -> best iteration
BEST: list[Any] = [
    pytest.param([], None, id="nothing-evaluated"),
    pytest.param([0.5], 0, id="baseline-only"),
    pytest.param([0.5, 0.7, 0.6], 1, id="peak-in-the-middle"),
    pytest.param([0.5, 0.7, 0.7], 1, id="tie-keeps-the-earliest"),
    pytest.param([0.5, None, 0.6], 2, id="unevaluated-skipped"),
]


def with_accuracies(accuracies: list[float | None], **spec: Any):  # type: ignore[no-untyped-def]
    run = started(make_run(iterations=5, **spec))
    for iteration, accuracy in enumerate(accuracies):
        record = state_of(run).record(iteration)
        run.status.history[iteration:] = [record]
        record.completed_at = "2026-01-01T00:00:00Z"
        if accuracy is not None:
            record.scores = {"heldout": SetScores(accuracy=accuracy, examples=10)}
    return run


@pytest.mark.parametrize(("accuracies", "best"), BEST)
def test_update_best_picks_the_highest_accuracy(
    accuracies: list[float | None], best: int | None
) -> None:
    state = state_of(with_accuracies(accuracies))
    update_best(state)
    assert state.status.best_iteration == best
    if best is None:
        assert state.status.best_model is None
    else:
        assert state.status.best_accuracy == accuracies[best]
        assert state.status.best_model == state.model_of(best)


# (patience, minImprovement, accuracies) -> stopped
EARLY_STOP: list[Any] = [
    pytest.param(0, 0.0, [0.5, 0.5, 0.5, 0.5], False, id="disabled"),
    pytest.param(2, 0.0, [0.5, 0.6, 0.55], False, id="one-stale-of-two"),
    pytest.param(2, 0.0, [0.5, 0.6, 0.55, 0.58], True, id="two-stale"),
    pytest.param(2, 0.0, [0.5, 0.6, 0.6, 0.6], False, id="equal-counts-as-improvement"),
    pytest.param(2, 0.05, [0.5, 0.6, 0.62, 0.64], True, id="below-min-improvement"),
    pytest.param(2, 0.0, [0.5, 0.4, 0.45, 0.6], False, id="recovered"),
]


@pytest.mark.parametrize(("patience", "minimum", "accuracies", "stopped"), EARLY_STOP)
def test_early_stopped(
    patience: int, minimum: float, accuracies: list[float], stopped: bool
) -> None:
    run = with_accuracies(accuracies, earlyStop={"patience": patience, "minImprovement": minimum})
    assert early_stopped(state_of(run)) is stopped


def test_early_stop_on_plateau_keeps_the_best_iteration() -> None:
    def flat(create: CreateJob) -> ObservedJob:
        job = observed(create)
        if create.task.stage is Stage.EVALUATE:
            accuracy = 0.7 if create.task.iteration == 1 else 0.65
            heldout = SetScores(accuracy=accuracy, examples=9)
            job.summaries = {0: EvaluateSummary(scores={"heldout": heldout})}
        return job

    run, _, _ = drive(make_run(iterations=5, earlyStop={"patience": 2}), flat)
    assert run.status.phase == Phase.SUCCEEDED
    assert len(run.status.history) == 4  # baseline, the best (1), two without improvement
    assert run.status.best_iteration == 1
    assert condition(run, ConditionType.SUCCEEDED).reason == "EarlyStopped"
