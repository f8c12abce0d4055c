"""The plugin's decisions (selftaught.plugin.requests): selectors, patches, refusals, columns."""

from __future__ import annotations

from typing import Any

import pytest

from selftaught.api import RunStatus, SelfTaughtRun, ServingStatus
from selftaught.phases import Stage
from selftaught.plugin.requests import (
    PluginError,
    comparison,
    latest_attempt,
    log_target,
    retry_patch,
    served_service,
)
from tests.unit.planning import make_run


def run_at(iteration: int, iterations: int = 3) -> SelfTaughtRun:
    return SelfTaughtRun.model_validate(
        {
            "metadata": {"name": "demo"},
            "spec": {
                "seedModel": "builtin://tiny-judge",
                "instructions": {"source": "builtin://arithmetic"},
                "iterations": iterations,
            },
            "status": {"iteration": iteration},
        }
    )


@pytest.mark.parametrize(
    ("stage", "iteration", "shard", "selector"),
    [
        pytest.param(
            Stage.JUDGE, None, None,
            "selftaught.dev/run=demo,selftaught.dev/iteration=2,selftaught.dev/stage=judge",
            id="current-iteration",
        ),
        pytest.param(
            Stage.PAIRS, 0, 1,
            "selftaught.dev/run=demo,selftaught.dev/iteration=0,selftaught.dev/stage=pairs,"
            "batch.kubernetes.io/job-completion-index=1",
            id="one-shard",
        ),
    ],
)  # fmt: skip
def test_logs_select_the_stages_pods_by_labels(
    stage: Stage, iteration: int | None, shard: int | None, selector: str
) -> None:
    assert log_target(run_at(2), stage=stage, iteration=iteration, shard=shard).selector == selector


@pytest.mark.parametrize(
    ("stage", "iteration", "message"),
    [
        pytest.param(Stage.JUDGE, 4, "iteration 4 is out of range", id="past-the-spec"),
        pytest.param(Stage.JUDGE, -1, "iteration -1 is out of range", id="negative"),
        pytest.param(Stage.JUDGE, 3, "iteration 3 has not started", id="not-reached"),
        pytest.param(Stage.SELECT, 1, "iteration 1 has no select stage", id="baseline-stage"),
        pytest.param(Stage.TRAIN, 0, "iteration 0 has no train stage", id="loop-stage-at-0"),
    ],
)
def test_retry_refuses_what_the_run_cannot_resume_from(
    stage: Stage, iteration: int, message: str
) -> None:
    with pytest.raises(PluginError, match=message):
        retry_patch(run_at(2), stage=stage, iteration=iteration, request="t")


def test_retry_of_the_same_position_twice_is_two_distinct_requests() -> None:
    """The planner applies each distinct resumeFrom once; the request text makes a repeat new."""
    run = run_at(2)
    first = retry_patch(run, stage=Stage.TRAIN, iteration=1, request="t1")
    run.status.applied_resume_from = "1/train@t1"
    second = retry_patch(run, stage=Stage.TRAIN, iteration=1, request="t2")
    assert first != second
    assert second["spec"]["resumeFrom"]["request"] == "t2"


def test_retry_patches_resume_from() -> None:
    patch = retry_patch(run_at(2), stage=Stage.EVALUATE, iteration=0, request="t")
    resume = {"iteration": 0, "stage": "evaluate", "request": "t"}
    assert patch == {"spec": {"resumeFrom": resume}}


def pod(name: str, attempt: int, index: int) -> dict[str, Any]:
    labels = {"selftaught.dev/attempt": str(attempt)}
    labels["batch.kubernetes.io/job-completion-index"] = str(index)
    return {"metadata": {"name": name, "labels": labels}}


def test_logs_read_the_latest_attempt_in_shard_order() -> None:
    pods = [pod("a0-1", 0, 1), pod("a1-1", 1, 1), pod("a1-0", 1, 0), pod("a0-0", 0, 0)]
    assert [p["metadata"]["name"] for p in latest_attempt(pods)] == ["a1-0", "a1-1"]


def test_compare_reads_the_best_iterations_scores_and_sums_gpu_hours() -> None:
    status = RunStatus.model_validate(
        {
            "bestIteration": 1,
            "bestAccuracy": 0.8,
            "history": [
                {"iteration": 0, "scores": {"heldout": {"accuracy": 0.6}}, "gpuSeconds": 3600},
                {
                    "iteration": 1,
                    "scores": {"rb": {"accuracy": 0.8, "sections": {"Chat": 0.9}}},
                    "gpuSeconds": 1800,
                },
            ],
        }
    )
    column = comparison("demo", status)
    assert column.scores == {"rb": 0.8, "rb/Chat": 0.9}
    assert column.gpu_hours == pytest.approx(1.5)
    assert column.best_iteration == 1


@pytest.mark.parametrize(
    ("serve", "serving", "expected"),
    [
        pytest.param(None, None, "serves no judge: set spec.serve", id="no-serve"),
        pytest.param({}, None, "has no judge server yet", id="not-created-yet"),
        pytest.param({}, {"service": "demo-judge"}, "no evaluated judge", id="no-best-yet"),
        pytest.param(
            {"port": 9000}, {"service": "demo-judge", "modelUri": "s3://m", "iteration": 1},
            ("demo-judge", 9000), id="served",
        ),
    ],
)  # fmt: skip
def test_served_service_names_the_judge_server_or_why_there_is_none(
    serve: dict[str, Any] | None, serving: dict[str, Any] | None, expected: Any
) -> None:
    run = make_run(serve=serve) if serve is not None else make_run()
    if serving is not None:
        run.status.serving = ServingStatus.model_validate(serving)
    if isinstance(expected, tuple):
        assert served_service(run) == expected
    else:
        with pytest.raises(PluginError, match=expected):
            served_service(run)
