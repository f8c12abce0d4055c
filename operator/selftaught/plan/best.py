"""Best-iteration and early-stop policies. Pure.

Both read one number per iteration: the overall accuracy on ``spec.earlyStop.metric``. The best
iteration is the highest (the earliest on a tie); early stop ends the run after ``patience``
completed iterations in a row that did not beat the best by ``minImprovement``.
"""

from __future__ import annotations

from selftaught.plan.state import PassState


def metric(state: PassState, iteration: int) -> float | None:
    """The early-stop metric's accuracy of ``iteration``, or None before it was evaluated."""
    scores = state.record(iteration).scores.get(state.spec.early_stop.metric)
    return scores.accuracy if scores else None


def update_best(state: PassState) -> None:
    """Recompute bestIteration, bestAccuracy and bestModel from the whole history."""
    best: tuple[float, int] | None = None
    for record in state.status.history:
        value = metric(state, record.iteration)
        if value is not None and (best is None or value > best[0]):
            best = (value, record.iteration)
    status = state.status
    if best is None:
        status.best_iteration = status.best_accuracy = status.best_model = None
        return
    # 3 decimals: what the BEST printer column (a number, printed as stored) shows;
    # the history keeps every score's full precision
    status.best_accuracy = round(best[0], 3)
    status.best_iteration = best[1]
    status.best_model = state.model_of(best[1])


def early_stopped(state: PassState) -> bool:
    """True when the last ``patience`` completed iterations brought no improvement."""
    rule = state.spec.early_stop
    if rule.patience <= 0:
        return False
    scores = [metric(state, r.iteration) for r in state.status.history if r.completed_at]
    stale, best = 0, None
    for value in (s for s in scores if s is not None):
        if best is None or value >= best + rule.min_improvement:
            best, stale = value, 0
        else:
            stale += 1
    return stale >= rule.patience
