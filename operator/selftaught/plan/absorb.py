"""Absorb: fold a succeeded stage's worker summaries into the iteration's record. Pure.

A sharded stage reports one summary per pod index; counts add up across shards, in index order
so any completion order gives the same record. The stage's wall time comes from the Job's own
start and completion times (the summaries' ``seconds`` when the Job has none), and its
GPU-seconds are wall time x GPUs per pod x pods, kept per stage and in total. The judge stage's
generated tokens and rounds fold into the record with tokens per kept judgment; an evaluation
updates GPU-hours per held-out accuracy point (:mod:`selftaught.cost`).
"""

from __future__ import annotations

from collections.abc import Sequence

from selftaught import cost
from selftaught.api import IterationRecord
from selftaught.phases import Stage
from selftaught.plan.observed import ObservedJob
from selftaught.plan.state import PassState
from selftaught.summaries import (
    EvaluateSummary,
    JudgeSummary,
    PairsSummary,
    SelectSummary,
    SetScores,
    Summary,
    TrainSummary,
    of_type,
)


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
    record.stage_gpu_seconds[stage.value] = round(gpu_seconds, 3)
    record.gpu_seconds = round(record.gpu_seconds + gpu_seconds, 3)
    if stage is Stage.EVALUATE:
        history = state.status.history
        record.gpu_hours_per_point = cost.gpu_hours_per_point(history, record.iteration)


def _record_results(
    state: PassState, record: IterationRecord, stage: Stage, summaries: Sequence[Summary]
) -> None:
    if stage is Stage.SELECT:
        select = of_type(summaries, SelectSummary)
        record.instructions = sum(s.instructions for s in select)
        record.heldout_instructions = sum(s.heldout for s in select)
        record.bad_lines = sum(s.bad_lines for s in select)
    elif stage is Stage.PAIRS:
        record.pairs = sum(s.pairs for s in of_type(summaries, PairsSummary))
    elif stage is Stage.JUDGE:
        judge = of_type(summaries, JudgeSummary)
        record.pairs = sum(s.pairs for s in judge)
        record.judgments_sampled = sum(s.sampled for s in judge)
        record.judgments_kept = sum(s.kept for s in judge)
        record.judging_tokens = sum(s.generated_tokens for s in judge)
        record.judging_rounds = max((s.rounds for s in judge), default=0)
        record.tokens_per_kept = cost.tokens_per_kept(record.judging_tokens, record.judgments_kept)
    elif stage is Stage.TRAIN:
        train = of_type(summaries, TrainSummary)
        losses = [s.loss for s in train if s.loss is not None]
        record.training_loss = losses[0] if losses else None
        if train:  # rank 0's report (one summary: training is not an indexed Job)
            record.method = train[0].method
            record.reward_margin = train[0].reward_margin
            record.reward_accuracy = train[0].reward_accuracy
        if record.model is None:
            record.model = state.model_of(record.iteration)
    elif stage is Stage.EVALUATE:
        scores: dict[str, SetScores] = {}
        for summary in of_type(summaries, EvaluateSummary):
            scores.update(summary.scores)
        record.scores = {k: v.model_copy() for k, v in scores.items()}


def duration(job: ObservedJob, summaries: Sequence[Summary]) -> float:
    """Wall-clock seconds of the stage: the Job's own times, else the longest shard's report."""
    if job.started_at and job.completed_at:
        return max(0.0, (job.completed_at - job.started_at).total_seconds())
    return max((s.seconds or 0.0 for s in summaries), default=0.0)
