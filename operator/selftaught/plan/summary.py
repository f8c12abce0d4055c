"""``status.summary``: the run in one line a person reads in ``kubectl get -o wide``. Pure.

"iteration 3/5 judging, best 0.840 at iteration 2, 1.9 GPU-h": where the run is, what it has
achieved, what it has cost. Computed from the status alone (no clock), so planning the same
observations twice yields the same line and the planner's fixed point holds.
"""

from __future__ import annotations

from selftaught.api import RunStatus
from selftaught.phases import Phase, Stage

#: What a run is doing while a stage's Jobs run, as a person would say it.
DOING = {
    Stage.SELECT: "selecting instructions",
    Stage.PAIRS: "building pairs",
    Stage.JUDGE: "judging",
    Stage.TRAIN: "training",
    Stage.EVALUATE: "evaluating",
}


def gpu_hours(status: RunStatus) -> float:
    """GPU-hours of every iteration so far (the records' ``gpuSeconds``)."""
    return sum(record.gpu_seconds for record in status.history) / 3600


def summary_line(status: RunStatus, *, iterations: int) -> str:
    """Position, best judge and cost of a run planned for ``iterations`` iterations."""
    parts = [_position(status, iterations)]
    if status.best_accuracy is not None and status.best_iteration is not None:
        parts.append(f"best {status.best_accuracy:.3f} at iteration {status.best_iteration}")
    parts.append(f"{gpu_hours(status):.1f} GPU-h")
    return ", ".join(parts)


def _position(status: RunStatus, iterations: int) -> str:
    at = f"iteration {status.iteration}/{iterations}"
    stage = status.stage
    if status.phase == Phase.SUCCEEDED:
        done = max((r.iteration for r in status.history), default=0)
        return f"succeeded after {done}/{iterations} iterations"
    if stage is None:
        return status.phase.value.lower()
    if status.phase == Phase.FAILED:
        return f"failed at {at} {stage.value}"
    if status.phase == Phase.SUSPENDED:
        return f"{at} suspended before {stage.value}"
    return f"{at} {DOING[stage]}"
