"""Absorb: fold a succeeded stage's worker summaries into the iteration's record. Pure.

A sharded stage reports one summary per pod index; counts add up across shards, in index order
so any completion order gives the same record. The stage's wall time comes from the Job's own
start and completion times (the summaries' ``seconds`` when the Job has none), and its
GPU-seconds are wall time x GPUs per pod x pods.
"""

from __future__ import annotations

from typing import Any

from selftaught.api import IterationRecord, SetScores
from selftaught.phases import Stage
from selftaught.plan.observed import ObservedJob
from selftaught.plan.state import PassState


def absorb(state: PassState, job: ObservedJob) -> None:
    """Record what the current stage's succeeded Job reported."""
    iteration, stage, _ = state.position()
    record = state.record(iteration)
    summaries = [job.summaries[k] for k in sorted(job.summaries)]
    _record_results(state, record, stage, summaries)
    seconds = duration(job, summaries)
    record.stage_seconds[stage.value] = round(seconds, 3)
    resources = state.spec.stages.of(stage)
    gpu_seconds = seconds * resources.gpus * resources.pods(stage)
    record.gpu_seconds = round(record.gpu_seconds + gpu_seconds, 3)


def _record_results(
    state: PassState, record: IterationRecord, stage: Stage, summaries: list[dict[str, Any]]
) -> None:
    def total(key: str) -> int:
        return sum(int(s.get(key, 0)) for s in summaries)

    if stage is Stage.SELECT:
        record.instructions = total("instructions")
        record.heldout_instructions = total("heldout")
        record.bad_lines = total("badLines")
    elif stage is Stage.PAIRS:
        record.pairs = total("pairs")
    elif stage is Stage.JUDGE:
        record.pairs = total("pairs")
        record.judgments_sampled = total("sampled")
        record.judgments_kept = total("kept")
    elif stage is Stage.TRAIN:
        losses = [s["loss"] for s in summaries if isinstance(s.get("loss"), int | float)]
        record.training_loss = float(losses[0]) if losses else None
        if record.model is None:
            record.model = state.model_of(record.iteration)
    elif stage is Stage.EVALUATE:
        scores: dict[str, Any] = {}
        for summary in summaries:
            scores.update(summary.get("scores", {}))
        record.scores = {k: SetScores.model_validate(v) for k, v in scores.items()}


def duration(job: ObservedJob, summaries: list[dict[str, Any]]) -> float:
    """Wall-clock seconds of the stage: the Job's own times, else the longest shard's report."""
    if job.started_at and job.completed_at:
        return max(0.0, (job.completed_at - job.started_at).total_seconds())
    return max((float(s.get("seconds", 0.0)) for s in summaries), default=0.0)
