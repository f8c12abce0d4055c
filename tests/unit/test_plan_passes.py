"""The planning pass (selftaught.plan.passes): transitions through a simulated cluster, one
behaviour per test; each policy has its own test_plan_<policy>.py."""

from __future__ import annotations

import pytest

from selftaught.phases import ConditionType, JobState, Phase, Stage
from selftaught.plan import CreateJob, DeleteJob, ObservedJob, plan
from tests.unit.planning import T0, drive, make_run, observed


def stages_created(jobs: dict[str, ObservedJob]) -> list[tuple[int, str, int]]:
    return [(j.iteration, j.stage.value, j.attempt) for j in jobs.values()]


def condition(run, kind: ConditionType):  # type: ignore[no-untyped-def]
    return next(c for c in run.status.conditions if c.type == kind.value)


def test_new_run_starts_with_selection() -> None:
    result = plan(make_run(), [], T0)
    assert [c.name for c in result.creates] == ["demo-i0-sel-a0"]
    assert result.status.phase == Phase.RUNNING
    assert result.status.stage == Stage.SELECT
    assert result.status.progress == "0/2"
    # One Event per pass: acceptance and the first stage are told together.
    assert [e.reason for e in result.events] == ["StageStarted"]
    assert result.events[0].message.startswith("run accepted")
    assert result.status.children == ["demo-i0-sel-a0"]


def test_full_run_walks_every_stage_in_order_and_succeeds() -> None:
    run, jobs, plans = drive(make_run())
    assert all(len([e for e in p.events if e.type == "Normal"]) <= 1 for p in plans)
    assert stages_created(jobs) == [
        (0, "select", 0),
        (0, "pairs", 0),
        (0, "evaluate", 0),
        (1, "judge", 0),
        (1, "train", 0),
        (1, "evaluate", 0),
        (2, "judge", 0),
        (2, "train", 0),
        (2, "evaluate", 0),
    ]
    status = run.status
    assert status.phase == Phase.SUCCEEDED
    assert [r.iteration for r in status.history] == [0, 1, 2]
    assert status.best_iteration == 2
    assert status.best_accuracy == pytest.approx(0.8)
    assert status.best_model == "file:///artifacts/ns/demo/iteration-2/train/model"
    assert (status.history[0].instructions, status.history[0].bad_lines) == (100, 0)
    assert status.history[1].judgments_kept == 30
    assert status.history[1].training_loss == 0.25
    assert status.children == []
    assert condition(run, ConditionType.SUCCEEDED).status == "True"
    assert condition(run, ConditionType.PROGRESSING).status == "False"


@pytest.mark.parametrize(
    ("init_from", "train_init_iteration_2"),
    [
        pytest.param("seed", "builtin://tiny-judge", id="restart-from-seed"),
        pytest.param(
            "previous", "file:///artifacts/ns/demo/iteration-1/train/model", id="from-previous"
        ),
    ],
)
def test_each_stage_gets_the_right_model(init_from: str, train_init_iteration_2: str) -> None:
    creates: list[CreateJob] = []

    def record(create: CreateJob) -> ObservedJob:
        creates.append(create)
        return observed(create)

    drive(make_run(training={"initFrom": init_from}), record)
    by = {(c.task.iteration, c.task.stage.value): c.task for c in creates}
    assert by[(0, "evaluate")].model == "builtin://tiny-judge"
    assert by[(1, "judge")].model == "builtin://tiny-judge"
    assert by[(1, "train")].init_model == "builtin://tiny-judge"
    assert by[(1, "evaluate")].model == "file:///artifacts/ns/demo/iteration-1/train/model"
    assert by[(2, "judge")].model == "file:///artifacts/ns/demo/iteration-1/train/model"
    assert by[(2, "train")].init_model == train_init_iteration_2


def test_active_jobs_of_another_position_are_deleted() -> None:
    run = make_run()
    start = plan(run, [], T0)
    run = run.model_copy(update={"status": start.status})
    stray = ObservedJob(
        name="demo-i0-sel-a7", iteration=0, stage=Stage.SELECT, attempt=7, state=JobState.RUNNING
    )
    result = plan(run, [stray], T0)
    assert any(isinstance(a, DeleteJob) and a.name == "demo-i0-sel-a7" for a in result.actions)


def test_a_run_without_storage_fails_with_a_message_naming_the_field() -> None:
    run = make_run()
    run.spec.storage = None
    result = plan(run, [], T0)
    assert result.status.phase == Phase.FAILED
    assert result.creates == []
    assert "spec.storage" in (result.status.message or "")
