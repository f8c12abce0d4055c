"""Suspend policy: ``spec.suspend`` pauses a run at the next stage boundary. Pure.

A running Job is never deleted for a suspend (it finishes and its results are absorbed); the
next stage's Job is simply not created until ``suspend`` is cleared. The phase shows
``Suspended`` only once the run actually sits at a boundary.
"""

from __future__ import annotations

from selftaught.phases import ConditionType, Phase, Reason, Stage, stages_of
from selftaught.plan.state import PassState


def previous_stage(iteration: int, stage: Stage) -> tuple[int, Stage] | None:
    """The stage that runs just before (iteration, stage), or None at the very start."""
    order = stages_of(iteration)
    if stage in order and order.index(stage) > 0:
        return iteration, order[order.index(stage) - 1]
    if iteration == 0:
        return None
    return iteration - 1, stages_of(iteration - 1)[-1]


def paused_message(iteration: int, stage: Stage) -> str:
    """Where a suspended run paused: ``status.stage`` names the stage that starts on resume,
    so the message names the one that finished last (what a user means by "where")."""
    before = previous_stage(iteration, stage)
    nxt = f"iteration {iteration} {stage.value} starts on resume"
    if before is None:
        return f"suspended before the first stage; {nxt}"
    return f"suspended after iteration {before[0]} {before[1].value}; {nxt}"


def stage_shown(phase: Phase, iteration: int, stage: Stage | None) -> str | None:
    """The STAGE column: the stage, or while Suspended the one after which the run paused."""
    if stage is None:
        return None
    if phase is not Phase.SUSPENDED:
        return stage.value
    before = previous_stage(iteration, stage)
    return "paused before select" if before is None else f"paused after {before[1].value}"


def hold_at_boundary(state: PassState) -> bool:
    """At a stage boundary: True while the run must stay suspended (create nothing now).

    Entering the suspension and leaving it each flip the Suspended condition and tell it once.
    """
    if state.spec.suspend:
        if state.phase is not Phase.SUSPENDED:
            state.status.phase = Phase.SUSPENDED
            message = paused_message(*state.position()[:2])
            state.condition(ConditionType.SUSPENDED, True, Reason.SUSPENDED, message)
            state.event("Normal", Reason.SUSPENDED, message)
        return True
    if state.phase is Phase.SUSPENDED:
        state.status.phase = Phase.RUNNING
        state.condition(ConditionType.SUSPENDED, False, Reason.RESUMED, "resumed")
        state.event("Normal", Reason.RESUMED, "resumed")
    return False
