"""Refused creates: the API server answered a Job create with a 4xx. Pure.

The controller feeds the refusal back as an observation (:class:`CreateRejected`) and plans
again, so the decision lives here with the other policies: 400/422 mean the Job is invalid
(bad input that no retry fixes) and the run fails; anything else (403 forbidden or over a
ResourceQuota, 404 namespace gone, ...) may pass later, so the run waits with a doubling
backoff and says so in its Stalled condition. Either way one Event, not one per retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from selftaught.conditions import find, parse_time, rfc3339
from selftaught.phases import ConditionType, Reason
from selftaught.plan.retry import BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS
from selftaught.plan.state import PassState


@dataclass(frozen=True)
class CreateRejected:
    """An observation: the API server refused the create of Job ``name`` with a 4xx."""

    name: str
    code: int
    reason: str
    message: str

    @property
    def invalid(self) -> bool:
        """400/422: the manifest itself is wrong; retrying sends the same bytes."""
        return self.code in (400, 422)


def create_rejected(state: PassState, rejected: CreateRejected) -> None:
    """Fail on an invalid Job; otherwise wait (doubling from the Stalled condition's age)."""
    iteration, stage, _ = state.position()
    where = (
        f"iteration {iteration}: stage {stage}: the API server refused Job {rejected.name} "
        f"({rejected.code} {rejected.reason}): {rejected.message}"
    )[:900]
    if rejected.invalid:
        state.fail(Reason.JOB_REJECTED, f"{where}; not retried (bad input)")
        return
    stalled = find(state.status.conditions, ConditionType.STALLED)
    since = None
    if stalled is not None and stalled.status == "True" and stalled.reason == Reason.JOB_REJECTED:
        since = parse_time(stalled.last_transition_time)
    waited = (state.now - (since or state.now)).total_seconds()
    delay = float(min(BACKOFF_CAP_SECONDS, max(BACKOFF_BASE_SECONDS, waited)))
    state.status.attempt.not_before = rfc3339(state.now + timedelta(seconds=delay))
    state.out.requeue_after = delay
    if state.condition(ConditionType.STALLED, True, Reason.JOB_REJECTED, where):
        state.event("Warning", Reason.JOB_REJECTED, f"{where}; retrying in {delay:.0f}s")
    else:
        state.status.message = f"{where}; retrying in {delay:.0f}s"
