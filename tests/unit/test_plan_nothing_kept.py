"""Nothing-kept policy (selftaught.plan.nothing_kept): an iteration whose judge keeps no
judgment ends the run early as Succeeded/NothingKept, says why and what to change, and creates
no train Job; a judge that keeps anything goes on as before."""

from __future__ import annotations

from datetime import timedelta

import pytest

from selftaught.phases import ConditionType, Phase, Stage
from selftaught.plan import CreateJob, ObservedJob, plan
from selftaught.summaries import JudgeSummary
from tests.unit.planning import T0, drive, make_run, observed


def condition(run, kind: ConditionType):  # type: ignore[no-untyped-def]
    return next(c for c in run.status.conditions if c.type == kind.value)


def judging(kept_by_iteration: dict[int, list[int]]):  # type: ignore[no-untyped-def]
    """Outcomes where iteration i's judge shards keep ``kept_by_iteration[i]`` judgments."""

    def outcome(create: CreateJob) -> ObservedJob:
        job = observed(create)
        task = create.task
        if task.stage is Stage.JUDGE and task.iteration in kept_by_iteration:
            kept = kept_by_iteration[task.iteration]
            job.summaries = {
                shard: JudgeSummary(
                    pairs=8, sampled=24, kept=n, invalid=20 - n, wrong=3, both_markers=1
                )
                for shard, n in enumerate(kept)
            }
        return job

    return outcome


# (kept per judge shard, by iteration) -> (judged iterations, iteration that stopped or None)
CASES = [
    pytest.param({1: [0]}, 1, id="seed-keeps-nothing-stops-at-iteration-1"),
    pytest.param({1: [0, 0]}, 1, id="no-shard-keeps-anything"),
    pytest.param({1: [0, 2]}, None, id="one-shard-keeping-is-enough"),
    pytest.param({2: [0]}, 2, id="a-trained-judge-that-keeps-nothing-stops-later"),
    pytest.param({}, None, id="judges-that-keep-go-on"),
]


@pytest.mark.parametrize(("kept", "stopped_at"), CASES)
def test_an_iteration_that_keeps_nothing_ends_the_run_early(
    kept: dict[int, list[int]], stopped_at: int | None
) -> None:
    shards = max((len(v) for v in kept.values()), default=1)
    run = make_run(iterations=3, stages={"judge": {"shards": shards, "gpus": 0}})
    run, jobs, plans = drive(run, judging(kept))
    assert run.status.phase == Phase.SUCCEEDED
    reason = condition(run, ConditionType.SUCCEEDED).reason
    trained = {j.iteration for j in jobs.values() if j.stage is Stage.TRAIN}
    if stopped_at is None:
        assert reason == "Completed"
        assert trained == {1, 2, 3}
        return
    assert reason == "NothingKept"
    assert trained == set(range(1, stopped_at))  # no train Job for the iteration that kept 0
    assert run.status.stage == Stage.JUDGE
    assert run.status.iteration == stopped_at
    assert run.status.history[stopped_at].judgments_kept == 0
    assert run.status.best_iteration == stopped_at - 1  # the last evaluated judge stays best
    last = plans[-1]
    assert [e.type for e in last.events] == ["Warning"]
    assert last.events[0].reason == "NothingKept"


def test_the_condition_says_why_and_what_to_change() -> None:
    run, _, _ = drive(make_run(iterations=2), judging({1: [0]}))
    message = condition(run, ConditionType.SUCCEEDED).message
    assert message.startswith("iteration 1: the judge kept no correct judgment of 24 sampled")
    assert "20 without a verdict, 3 wrong, 1 naming both verdicts, 0 ties" in message
    assert "stopped early, best is iteration 0" in message
    for knob in ("seedModel", "judging.samplesPerPair", "judging.maxNewTokens", "judging.template"):
        assert knob in message
    assert condition(run, ConditionType.PROGRESSING).status == "False"
    assert run.status.completed_at is not None


def test_a_stopped_run_stays_stopped_on_the_next_pass() -> None:
    run, jobs, _ = drive(make_run(iterations=2), judging({1: [0]}))
    again = plan(run, list(jobs.values()), T0 + timedelta(hours=1))
    assert again.status.phase == Phase.SUCCEEDED
    assert again.status.completed_at == run.status.completed_at
    assert not again.creates
    assert again.events == []
