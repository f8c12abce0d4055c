"""Retry policy: what a failed or stuck attempt costs, and when the next one starts. Pure.

* Bad input is never retried: it would fail the same way. The run fails, naming the cause.
* Disruptions (eviction, preemption, node loss) retry at once and consume no budget.
* Everything else retries after an exponential backoff, up to the stage's ``maxRetries``.
* An attempt stuck (unschedulable, image pull, not admitted by Kueue) longer than the stage's
  ``pendingTimeoutSeconds`` is deleted and counted as a failed attempt.

Each retry gets a new attempt number, so a new Job name: the old Job's results can never be
mistaken for the new attempt's.
"""

from __future__ import annotations

from datetime import timedelta

from selftaught.conditions import find, rfc3339
from selftaught.phases import ConditionType, FailureClass, JobState, Reason
from selftaught.plan.actions import DeleteJob
from selftaught.plan.observed import ObservedJob
from selftaught.plan.state import PassState

#: Retry backoff: base * 2**(failures-1), capped. Seconds.
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_CAP_SECONDS = 300.0


def backoff(failures: int) -> float:
    """Seconds to wait before the attempt after the ``failures``-th failure."""
    return float(min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, failures - 1)))


def handle_failure(state: PassState, job: ObservedJob) -> None:
    """Fail the run, or schedule the next attempt of the current stage."""
    iteration, stage, attempt = state.position()
    failure = FailureClass(job.failure or FailureClass.PROGRAM_ERROR)
    cause = job.failure_message or failure.value
    where = f"iteration {iteration}: stage {stage} failed (Job {job.name}, {failure.value})"
    record = state.status.attempt
    record.last_failure = f"{where}: {cause}"[:1024]
    if not failure.retryable:
        state.fail(failure.reason, f"{where}: {cause}; not retried (bad input)")
        return
    delay = 0.0
    if failure.consumes_retry:
        record.failures += 1
        if record.failures > state.spec.stages.of(stage).max_retries:
            state.fail(
                Reason.RETRIES_EXHAUSTED,
                f"{where}: {cause}; gave up after {record.failures} failures",
            )
            return
        delay = backoff(record.failures)
    else:
        record.disruptions += 1
    record.number = attempt + 1
    record.not_before = rfc3339(state.now + timedelta(seconds=delay)) if delay else None
    state.event("Warning", Reason.STAGE_RETRYING, f"{where}: {cause}; retrying in {delay:.0f}s")


def watch_active(state: PassState, job: ObservedJob) -> None:
    """A Job still pending or running: raise Stalled while it is stuck, replace it when stuck
    past the stage's pending timeout, clear Stalled when it makes progress again."""
    if not job.stuck_reason:
        # Only a recovery flips it: "select succeeded" stays until something is stuck, so a Job
        # going from pending to running costs no status write.
        stalled = find(state.status.conditions, ConditionType.STALLED)
        if stalled is None or stalled.status == "True":
            state.condition(ConditionType.STALLED, False, Reason.STAGE_STARTED, "making progress")
        return
    timeout = state.spec.stages.of(job.stage).pending_timeout_seconds
    waited = (state.now - (job.stuck_since or state.now)).total_seconds()
    message = f"Job {job.name} ({job.stage}): {job.stuck_reason}: {job.stuck_message or ''}"
    if state.condition(ConditionType.STALLED, True, Reason(job.stuck_reason), message):
        state.event("Warning", Reason(job.stuck_reason), message.strip())
    if waited < timeout:
        state.out.requeue_after = timeout - waited
        return
    state.out.actions.append(DeleteJob(job.name, "pending too long"))
    stuck = job.model_copy(
        update={
            "state": JobState.FAILED,
            "failure": FailureClass.DEADLINE_EXCEEDED,
            "failure_message": f"{job.stuck_reason} for {int(waited)}s",
        }
    )
    handle_failure(state, stuck)
