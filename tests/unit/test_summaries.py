"""Stage summaries: declared per stage, camelCase on the wire, parsed once where they arrive."""

from __future__ import annotations

import json
from typing import Any

import pytest

from selftaught.phases import JobState, Stage
from selftaught.plan import ObservedJob
from selftaught.summaries import (
    MODELS,
    BadSummary,
    EvaluateSummary,
    JudgeSummary,
    PairsSummary,
    SelectSummary,
    SetScores,
    Summary,
    TrainSummary,
    parse,
)
from selftaught.worker import compact_summary

FILLED: list[tuple[str, Summary, dict[str, Any]]] = [
    (
        "select",
        SelectSummary(instructions=9, heldout=1, bad_lines=2, bad_line_numbers=[3, 7], read=11),
        {"instructions": 9, "heldout": 1, "badLines": 2, "badLineNumbers": [3, 7], "read": 11,
         "skippedTooLong": 0},
    ),
    (
        "pairs",
        PairsSummary(pairs=4, heldout_pairs=1, failed=1, failures={"empty": 1}),
        {"pairs": 4, "heldoutPairs": 1, "failed": 1, "failures": {"empty": 1}},
    ),
    (
        "judge",
        JudgeSummary(pairs=4, sampled=16, kept=3, invalid=2, both_markers=1, kept_winner_a=2,
                     kept_winner_b=1, generated_tokens=640, rounds=3),
        {"pairs": 4, "sampled": 16, "generatedTokens": 640, "rounds": 3, "kept": 3,
         "invalid": 2, "bothMarkers": 1, "ties": 0,
         "wrong": 0, "keptWinnerA": 2, "keptWinnerB": 1, "droppedForBalance": 0,
         "skippedTooLong": 0, "droppedWithoutRejected": 0, "rejectedNotWrong": 0},
    ),
    (
        "train",
        TrainSummary(loss=0.25, examples=3, steps=1, ranks=2, model="s3://b/m"),
        {"loss": 0.25, "examples": 3, "steps": 1, "ranks": 2, "model": "s3://b/m",
         "sharded": False, "rankParameterBytes": 0, "rankOptimizerBytes": 0, "method": "sft"},
    ),
    (
        "train-dpo",
        TrainSummary(loss=0.5, method="dpo", reward_margin=1.25, reward_accuracy=0.75),
        {"loss": 0.5, "examples": 0, "steps": 0, "ranks": 1, "sharded": False,
         "rankParameterBytes": 0, "rankOptimizerBytes": 0, "method": "dpo",
         "rewardMargin": 1.25, "rewardAccuracy": 0.75},
    ),
    (
        "evaluate",
        EvaluateSummary(
            scores={"heldout": SetScores(accuracy=0.75, examples=4, sections={"Chat": 0.75})},
            reasoning_agreement=0.5,
            warnings=["look"],
        ),
        {
            "scores": {"heldout": {"accuracy": 0.75, "examples": 4, "invalid": 0, "ties": 0,
                                   "sections": {"Chat": 0.75}, "scoring": "lenient",
                                   "partial": False, "sectionsMissing": []}},
            "reasoningAgreement": 0.5,
            "warnings": ["look"],
            "skippedTooLong": {},
        },
    ),
]  # fmt: skip


@pytest.mark.parametrize(("summary", "wire"), [pytest.param(s, w, id=i) for i, s, w in FILLED])
def test_each_stage_summary_keeps_its_camel_case_wire_form(
    summary: Summary, wire: dict[str, Any]
) -> None:
    identity = {"iteration": 1, "shard": 0, "attempt": 2, "seconds": 1.5, "compute_seconds": 1.0}
    reported = summary.model_copy(update=identity)
    assert reported.to_wire() == {
        "stage": summary.stage.value,
        "iteration": 1,
        "shard": 0,
        "attempt": 2,
        "seconds": 1.5,
        "computeSeconds": 1.0,
        **wire,
    }
    text = compact_summary(reported.to_wire())
    assert parse(summary.stage, json.loads(text)) == reported  # the round trip is lossless


def test_every_stage_has_its_model() -> None:
    assert set(MODELS) == set(Stage)
    assert all(MODELS[stage]().stage is stage for stage in Stage)  # type: ignore[call-arg]


def test_a_message_without_stage_takes_the_jobs_stage() -> None:
    assert parse(Stage.JUDGE, {"kept": 3}) == JudgeSummary(kept=3)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        pytest.param({"stage": "train", "loss": 1.0}, "'train' came from a judge Job", id="other"),
        pytest.param({"kept": "many"}, "kept: Input should be a valid integer", id="wrong-type"),
        pytest.param({"stage": "bogus"}, "'bogus' came from a judge Job", id="unknown-stage"),
    ],
)
def test_a_bad_summary_is_refused_naming_the_field(data: dict[str, Any], named: str) -> None:
    with pytest.raises(BadSummary, match=named):
        parse(Stage.JUDGE, data)


def test_unknown_keys_are_ignored_and_a_compacted_summary_still_parses() -> None:
    big = EvaluateSummary(
        scores={f"set-{i}": SetScores(accuracy=0.5, examples=i) for i in range(200)},
    ).model_copy(update={"iteration": 3, "seconds": 2.0})
    wire = {**big.to_wire(), "fromANewerWorker": [1, 2, 3]}
    compacted = json.loads(compact_summary(wire))
    assert compacted["truncated"] == ["scores"]
    parsed = parse(Stage.EVALUATE, compacted)
    assert isinstance(parsed, EvaluateSummary)
    assert (parsed.iteration, parsed.seconds, parsed.scores) == (3, 2.0, {})
    assert parsed.truncated == ["scores"]


def test_an_observed_job_parses_plain_summaries_as_its_stage() -> None:
    """A local result.json or a test gives plain JSON; the planner still gets the models."""
    job = ObservedJob.model_validate(
        {
            "name": "demo-i1-judge-a0",
            "iteration": 1,
            "stage": "judge",
            "attempt": 0,
            "state": JobState.SUCCEEDED,
            "summaries": {"0": {"kept": 2}, "1": {"stage": "judge", "kept": 5}},
        }
    )
    assert job.summaries == {0: JudgeSummary(kept=2), 1: JudgeSummary(kept=5)}
    again = ObservedJob.model_validate_json(job.model_dump_json())  # the local runner's record
    assert again.summaries == job.summaries
    assert '"compute_seconds"' not in job.model_dump_json()  # keys stay the wire's
    assert '"heldoutPairs"' in PairsSummary().model_dump_json()


def test_a_parsed_summary_is_not_parsed_again() -> None:
    parsed = JudgeSummary(kept=1)
    job = ObservedJob(
        name="demo-i1-judge-a0",
        iteration=1,
        stage=Stage.JUDGE,
        attempt=0,
        state=JobState.SUCCEEDED,
        summaries={0: parsed},
    )
    assert job.summaries[0] is parsed
