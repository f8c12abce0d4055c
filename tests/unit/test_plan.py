"""The planner's transitions, one behaviour per test, driven through a simulated cluster."""

from __future__ import annotations

from datetime import timedelta

import pytest

from selftaught.api import ObservedJob, ResumeFrom
from selftaught.phases import ConditionType, FailureClass, JobState, Phase, Stage
from selftaught.plan import CreateJob, DeleteJob, backoff, plan
from selftaught.summaries import EvaluateSummary, SetScores
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


def test_stage_durations_and_gpu_seconds_are_recorded() -> None:
    run, _, _ = drive(make_run(stages={"judge": {"gpus": 8, "tensorParallel": 8, "shards": 2}}))
    record = run.status.history[1]
    assert record.stage_seconds == {"judge": 4.0, "train": 4.0, "evaluate": 4.0}
    # judge: 4 s x 8 GPUs x 2 shards; train and evaluate: 4 s x 1 GPU.
    assert record.gpu_seconds == pytest.approx(4 * 8 * 2 + 4 + 4)


def test_sharded_stage_is_one_indexed_job_and_summaries_add_up() -> None:
    run, jobs, _ = drive(make_run(stages={"pairs": {"shards": 3}, "judge": {"shards": 2}}))
    pairs = next(j for j in jobs.values() if j.stage is Stage.PAIRS)
    assert sorted(pairs.summaries) == [0, 1, 2]
    assert run.status.history[0].pairs == 40 + 41 + 42
    assert run.status.history[1].judgments_kept == 30 + 31
    assert run.status.history[1].judgments_sampled == 320


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


def test_changing_an_immutable_field_is_refused_with_one_warning() -> None:
    run = make_run()
    run = run.model_copy(update={"status": plan(run, [], T0).status})
    run.spec.seed_model = "s3://other/model"
    first = plan(run, [], T0)
    assert first.creates == []
    refused = next(c for c in first.status.conditions if c.type == "SpecAccepted")
    assert (refused.status, refused.reason) == ("False", "ImmutableFieldChanged")
    assert [e.type for e in first.events] == ["Warning"]
    run = run.model_copy(update={"status": first.status})
    assert plan(run, [], T0).events == []


def test_raising_iterations_extends_a_finished_run() -> None:
    run, jobs, _ = drive(make_run(iterations=1))
    assert run.status.phase == Phase.SUCCEEDED
    run.spec.iterations = 2
    result = plan(run, list(jobs.values()), T0 + timedelta(hours=1))
    assert result.status.phase == Phase.RUNNING
    assert [c.name for c in result.creates] == ["demo-i2-judge-a0"]
    assert result.status.progress == "2/2"


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
