"""Nothing-kept policy: an iteration whose judge kept no judgment ends the run early. Pure.

Rejection sampling keeps a judgment only when its verdict matches the known winner. A judge that
never writes one (a small or untuned model that ignores the verdict format, verdicts cut off by
``judging.maxNewTokens``, a template the model does not follow) leaves the train stage nothing to
learn from, and the next iteration would judge with the same model and keep nothing again.

The run then **succeeds, stopped early** (reason ``NothingKept``), rather than failing:

* nothing is broken and retrying cannot help, so it is not a failure class of a stage attempt
  (``BadInput`` used to say so, and blamed the input for what is a property of the model);
* everything measured so far stays valid and visible: iteration 0's baseline scores, earlier
  iterations and ``bestIteration`` / ``bestModel``, exactly as after an early stop;
* the condition and a Warning Event say why (the judge summary's counts: samples without a
  verdict, wrong, both verdicts, ties) and what to change, so ``kubectl get`` shows it.

The run stays at the judge stage of that iteration (no train Job is created), so a later
``resumeFrom`` or a changed spec can continue from there.
"""

from __future__ import annotations

from selftaught.conditions import rfc3339
from selftaught.phases import ConditionType, Phase, Reason, Stage
from selftaught.plan.observed import ObservedJob
from selftaught.plan.state import PassState
from selftaught.summaries import JudgeSummary, of_type

WHAT_TO_CHANGE = (
    "to keep judgments: a stronger seedModel, more judging.samplesPerPair or a higher "
    "judging.temperature, a larger judging.maxNewTokens if verdicts are cut off, or a "
    "judging.template the model follows"
)


def kept_nothing(state: PassState) -> bool:
    """True when the judge stage just absorbed kept no judgment at all."""
    iteration, stage, _ = state.position()
    return stage is Stage.JUDGE and state.record(iteration).judgments_kept == 0


def explain(state: PassState, job: ObservedJob) -> str:
    """The condition message: the counts that show why, the best so far, what to change."""
    iteration, _, _ = state.position()
    judged = of_type([job.summaries[k] for k in sorted(job.summaries)], JudgeSummary)
    sampled = sum(s.sampled for s in judged)
    counts = {
        "without a verdict": sum(s.invalid for s in judged),
        "wrong": sum(s.wrong for s in judged),
        "naming both verdicts": sum(s.both_markers for s in judged),
        "ties": sum(s.ties for s in judged),
    }
    skipped = sum(s.skipped_too_long for s in judged)
    why = ", ".join(f"{n} {what}" for what, n in counts.items())
    too_long = f"; {skipped} pairs too long for the context" if skipped else ""
    best = state.status.best_iteration
    shown = f"best is iteration {best}" if best is not None else "no iteration was evaluated"
    return (
        f"iteration {iteration}: the judge kept no correct judgment of {sampled} sampled "
        f"({why}{too_long}), so there is nothing to train on; stopped early, {shown}; "
        f"{WHAT_TO_CHANGE}"
    )


def stop_when_nothing_kept(state: PassState, job: ObservedJob) -> bool:
    """End the run early (Succeeded, ``NothingKept``) when the judge kept nothing; True if so."""
    if not kept_nothing(state):
        return False
    message = explain(state, job)
    state.status.phase = Phase.SUCCEEDED
    state.status.completed_at = rfc3339(state.now)
    state.condition(ConditionType.PROGRESSING, False, Reason.NOTHING_KEPT, message)
    state.condition(ConditionType.SUCCEEDED, True, Reason.NOTHING_KEPT, message)
    state.event("Warning", Reason.NOTHING_KEPT, message)
    return True
