"""Suspend policy: ``spec.suspend`` pauses a run at the next stage boundary. Pure.

A running Job is never deleted for a suspend (it finishes and its results are absorbed); the
next stage's Job is simply not created until ``suspend`` is cleared. The phase shows
``Suspended`` only once the run actually sits at a boundary.
"""

from __future__ import annotations

from selftaught.phases import ConditionType, Phase, Reason
from selftaught.plan.state import PassState

SUSPENDED_MESSAGE = "suspended at a stage boundary"


def hold_at_boundary(state: PassState) -> bool:
    """At a stage boundary: True while the run must stay suspended (create nothing now).

    Entering the suspension and leaving it each flip the Suspended condition and tell it once.
    """
    if state.spec.suspend:
        if state.phase is not Phase.SUSPENDED:
            state.status.phase = Phase.SUSPENDED
            state.condition(ConditionType.SUSPENDED, True, Reason.SUSPENDED, SUSPENDED_MESSAGE)
            state.event("Normal", Reason.SUSPENDED, SUSPENDED_MESSAGE)
        return True
    if state.phase is Phase.SUSPENDED:
        state.status.phase = Phase.RUNNING
        state.condition(ConditionType.SUSPENDED, False, Reason.RESUMED, "resumed")
        state.event("Normal", Reason.RESUMED, "resumed")
    return False
