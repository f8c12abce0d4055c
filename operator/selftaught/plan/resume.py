"""Resume and extend policies: the two ways a user moves a run's position. Pure.

* ``spec.resumeFrom`` rewinds to an iteration and stage, once per distinct request (its
  ``request`` text tells a repeat of the same position from the request already applied): later
  history is dropped, Jobs of later positions are deleted, and the stage restarts on a fresh
  attempt number (older Jobs of that stage may still exist; a new name fences them off).
* Raising ``spec.iterations`` on a run that finished all of its iterations (not one that stopped
  early) continues it with the next iteration's judge stage.
"""

from __future__ import annotations

from selftaught.api import IterationRecord
from selftaught.phases import ConditionType, Phase, Reason, Stage, stages_of
from selftaught.plan.actions import DeleteJob
from selftaught.plan.best import early_stopped, update_best
from selftaught.plan.state import PassState


def resume_key(iteration: int, stage: Stage, request: str | None = None) -> str:
    """``status.appliedResumeFrom`` of a request: ``1/train``, or ``1/train@<request>``."""
    key = f"{iteration}/{stage.value}"
    return f"{key}@{request}" if request else key


def apply_resume_from(state: PassState) -> None:
    """Apply a new ``resumeFrom`` request; a request already applied is a no-op."""
    request = state.spec.resume_from
    if request is None:
        return
    key = resume_key(request.iteration, Stage(request.stage), request.request)
    if key == state.status.applied_resume_from or state.status.stage is None:
        # Not started yet: a resumeFrom on a new run means nothing; remember it as applied.
        state.status.applied_resume_from = key
        return
    state.status.applied_resume_from = key
    iteration, stage = request.iteration, Stage(request.stage)
    if iteration > len(state.status.history):
        iteration, stage = len(state.status.history), Stage.JUDGE
    del state.status.history[iteration + 1 :]
    _forget_from(state.record(iteration), stage)
    seen = [j.attempt for j in state.jobs.values() if (j.iteration, j.stage) == (iteration, stage)]
    _delete_later_jobs(state, iteration, stage, key)
    status = state.status
    status.iteration, status.stage = iteration, stage
    status.attempt.number = max(seen, default=-1) + 1
    status.attempt.failures = status.attempt.disruptions = 0
    status.attempt.not_before = None
    status.stage_started_at = status.completed_at = None
    status.phase = Phase.RUNNING
    update_best(state)
    for kind in (ConditionType.SUCCEEDED, ConditionType.FAILED):
        state.condition(kind, False, Reason.RESUMED_FROM, f"resumed from {key}")
    state.event("Normal", Reason.RESUMED_FROM, f"resuming from iteration {iteration}, {stage}")


def _forget_from(record: IterationRecord, stage: Stage) -> None:
    """Clear what ``stage`` and the stages after it recorded in this iteration."""
    order = stages_of(record.iteration)
    for later in order[order.index(stage) :]:
        record.stage_seconds.pop(later.value, None)
        if later is Stage.EVALUATE:
            record.scores = {}
        if later is Stage.TRAIN and record.iteration > 0:
            record.training_loss = None
            record.model = None
        if later is Stage.JUDGE:
            record.judgments_sampled = record.judgments_kept = record.pairs = None
    record.completed_at = None


def _delete_later_jobs(state: PassState, iteration: int, stage: Stage, key: str) -> None:
    """Jobs of the stages after the resume point (and of later iterations) hold results from
    before the resume; left in place, attempt 0 of those stages would be mistaken for a fresh
    run."""
    order = stages_of(iteration)
    later_stages = set(order[order.index(stage) + 1 :])
    for job in list(state.jobs.values()):
        if job.iteration > iteration or (job.iteration == iteration and job.stage in later_stages):
            state.out.actions.append(DeleteJob(job.name, f"superseded by resumeFrom {key}"))
            del state.jobs[job.name]


def maybe_extend(state: PassState) -> None:
    """Raising ``iterations`` on a run that finished all of them continues it."""
    done = len(state.status.history) - 1
    if (
        state.phase is Phase.SUCCEEDED
        and state.status.stage == Stage.EVALUATE
        and state.spec.iterations > done
        and not early_stopped(state)
    ):
        state.status.phase = Phase.RUNNING
        state.status.completed_at = None
        state.enter(done + 1, Stage.JUDGE)
        state.condition(ConditionType.SUCCEEDED, False, Reason.EXTENDED, "iterations raised")
        state.event("Normal", Reason.EXTENDED, f"iterations raised to {state.spec.iterations}")
