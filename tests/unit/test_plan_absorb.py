"""Absorb (selftaught.plan.absorb): a succeeded stage's summaries folded into the record,
table-driven, then through a simulated cluster."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from selftaught.phases import JobState, Stage
from selftaught.plan import ObservedJob
from selftaught.plan.absorb import absorb, duration
from selftaught.summaries import SelectSummary
from tests.unit.planning import T0, drive, make_run, started, state_of

SELECT = {"instructions": 100, "heldout": 10, "badLines": 2}
SCORES = {"scores": {"heldout": {"accuracy": 0.75, "examples": 8}}}

# (stage, summaries by shard, resources) -> (record fields, gpu-seconds for 10 s of wall time)
ABSORB: list[Any] = [
    pytest.param(
        Stage.SELECT,
        {0: SELECT},
        {},
        ({"instructions": 100, "heldout_instructions": 10, "bad_lines": 2}, 10.0),
        id="select-counts",
    ),
    pytest.param(
        Stage.PAIRS,
        {1: {"pairs": 5}, 0: {"pairs": 7}},
        {"shards": 2, "gpus": 2},
        ({"pairs": 12}, 40.0),
        id="pairs-add-up-across-shards",
    ),
    pytest.param(
        Stage.JUDGE,
        {0: {"pairs": 4, "sampled": 60, "kept": 3}},
        {"gpus": 0, "engine": "transformers"},
        ({"pairs": 4, "judgments_sampled": 60, "judgments_kept": 3}, 0.0),
        id="judge-on-cpu-costs-no-gpu",
    ),
    pytest.param(
        Stage.JUDGE,
        {
            1: {"pairs": 4, "sampled": 6, "kept": 4, "generatedTokens": 600, "rounds": 3},
            0: {"pairs": 4, "sampled": 5, "kept": 2, "generatedTokens": 300, "rounds": 2},
        },
        {"shards": 2, "gpus": 1},
        (
            {
                "judgments_sampled": 11,
                "judgments_kept": 6,
                "judging_tokens": 900,
                "judging_rounds": 3,
                "tokens_per_kept": 150.0,
            },
            20.0,
        ),
        id="judge-tokens-add-up-rounds-of-the-busiest-shard",
    ),
    pytest.param(
        Stage.TRAIN,
        {0: {"loss": 0.5}, 1: {"loss": 0.7}},
        {"nodes": 2, "gpus": 4},
        (
            {"training_loss": 0.5, "model": "file:///artifacts/ns/demo/iteration-1/train/model"},
            80.0,
        ),
        id="train-rank-zero-loss-nodes-count",
    ),
    pytest.param(
        Stage.TRAIN,
        {0: {}},
        {},
        ({"training_loss": None, "method": "sft"}, 10.0),
        id="train-without-loss",
    ),
    pytest.param(
        Stage.TRAIN,
        {0: {"loss": 0.6, "method": "dpo", "rewardMargin": 1.5, "rewardAccuracy": 0.875}},
        {},
        ({"method": "dpo", "reward_margin": 1.5, "reward_accuracy": 0.875}, 10.0),
        id="train-dpo-method-and-rewards",
    ),
    pytest.param(
        Stage.EVALUATE,
        {0: SCORES},
        {},
        (
            {
                "scores": {
                    "heldout": {
                        "accuracy": 0.75,
                        "examples": 8,
                        "position_consistency": None,
                        "invalid": 0,
                        "ties": 0,
                        "sections": {},
                        "scoring": "lenient",
                        "partial": False,
                        "rows_expected": None,
                        "sections_missing": [],
                    }
                }
            },
            10.0,
        ),
        id="evaluate-scores",
    ),
]


@pytest.mark.parametrize(("stage", "summaries", "resources", "expected"), ABSORB)
def test_absorb(
    stage: Stage, summaries: dict[int, Any], resources: dict[str, Any], expected: Any
) -> None:
    iteration = 0 if stage.once_per_run else 1
    run = started(make_run(stages={stage.value: resources}), iteration=iteration, stage=stage)
    state = state_of(run)
    job = ObservedJob(
        name="any",
        iteration=iteration,
        stage=stage,
        attempt=0,
        state=JobState.SUCCEEDED,
        summaries=summaries,
        started_at=T0,
        completed_at=T0 + timedelta(seconds=10),
    )
    absorb(state, job)
    fields, gpu_seconds = expected
    record = state.status.history[iteration]
    dumped = record.model_dump()
    assert {k: dumped[k] for k in fields} == fields
    assert record.stage_seconds == {stage.value: 10.0}
    assert record.gpu_seconds == pytest.approx(gpu_seconds)
    assert record.stage_gpu_seconds == {stage.value: pytest.approx(gpu_seconds)}


@pytest.mark.parametrize(
    ("times", "summaries", "seconds"),
    [
        pytest.param(True, [{"seconds": 99}], 10.0, id="job-times-win"),
        pytest.param(False, [{"seconds": 3}, {"seconds": 7.5}], 7.5, id="slowest-shard"),
        pytest.param(False, [{}], 0.0, id="nothing-known"),
    ],
)
def test_duration(times: bool, summaries: list[dict[str, Any]], seconds: float) -> None:
    job = ObservedJob(
        name="any",
        iteration=0,
        stage=Stage.SELECT,
        attempt=0,
        state=JobState.SUCCEEDED,
        started_at=T0 if times else None,
        completed_at=T0 + timedelta(seconds=10) if times else None,
    )
    assert duration(job, [SelectSummary.model_validate(s) for s in summaries]) == seconds


def test_stage_durations_and_gpu_seconds_are_recorded() -> None:
    run, _, _ = drive(make_run(stages={"judge": {"gpus": 8, "tensorParallel": 8, "shards": 2}}))
    record = run.status.history[1]
    assert record.stage_seconds == {"judge": 4.0, "train": 4.0, "evaluate": 4.0}
    # judge: 4 s x 8 GPUs x 2 shards; train and evaluate: 4 s x 1 GPU.
    assert record.gpu_seconds == pytest.approx(4 * 8 * 2 + 4 + 4)
    assert record.stage_gpu_seconds == {"judge": 64.0, "train": 4.0, "evaluate": 4.0}


def test_sharded_stage_is_one_indexed_job_and_summaries_add_up() -> None:
    run, jobs, _ = drive(make_run(stages={"pairs": {"shards": 3}, "judge": {"shards": 2}}))
    pairs = next(j for j in jobs.values() if j.stage is Stage.PAIRS)
    assert sorted(pairs.summaries) == [0, 1, 2]
    assert run.status.history[0].pairs == 40 + 41 + 42
    assert run.status.history[1].judgments_kept == 30 + 31
    assert run.status.history[1].judgments_sampled == 320
