"""``status.summary``: one readable line per run state (selftaught.plan.summary)."""

from __future__ import annotations

from typing import Any

import pytest

from selftaught.api import RunStatus
from selftaught.plan import plan
from selftaught.plan.summary import summary_line
from tests.unit.planning import T0, drive, make_run


def history(*accuracies: float, gpu_seconds: float = 2280.0) -> list[dict[str, Any]]:
    return [
        {"iteration": i, "scores": {"heldout": {"accuracy": a}}, "gpuSeconds": gpu_seconds}
        for i, a in enumerate(accuracies)
    ]


@pytest.mark.parametrize(
    ("status", "line"),
    [
        pytest.param({}, "pending, 0.0 GPU-h", id="pending"),
        pytest.param(
            {"phase": "Running", "stage": "select", "iteration": 0},
            "iteration 0/5 selecting instructions, 0.0 GPU-h",
            id="first-stage",
        ),
        pytest.param(
            {"phase": "Running", "stage": "judge", "iteration": 3,
             "history": history(0.7, 0.79, 0.84), "bestIteration": 2, "bestAccuracy": 0.84},
            "iteration 3/5 judging, best 0.840 at iteration 2, 1.9 GPU-h",
            id="judging-with-a-best",
        ),
        pytest.param(
            {"phase": "Suspended", "stage": "train", "iteration": 1, "history": history(0.7)},
            "iteration 1/5 suspended before train, 0.6 GPU-h",
            id="suspended",
        ),
        pytest.param(
            {"phase": "Failed", "stage": "evaluate", "iteration": 2, "history": history(0.7, 0.8),
             "bestIteration": 1, "bestAccuracy": 0.8},
            "failed at iteration 2/5 evaluate, best 0.800 at iteration 1, 1.3 GPU-h",
            id="failed",
        ),
        pytest.param(
            {"phase": "Succeeded", "stage": "evaluate", "iteration": 5,
             "history": history(0.7, 0.8, 0.9, 0.88, 0.87, 0.86), "bestIteration": 2,
             "bestAccuracy": 0.9},
            "succeeded after 5/5 iterations, best 0.900 at iteration 2, 3.8 GPU-h",
            id="succeeded",
        ),
    ],
)  # fmt: skip
def test_summary_line(status: dict[str, Any], line: str) -> None:
    assert summary_line(RunStatus.model_validate(status), iterations=5) == line


def test_every_planning_pass_writes_the_summary() -> None:
    assert (
        plan(make_run(), [], T0).status.summary == "iteration 0/2 selecting instructions, 0.0 GPU-h"
    )
    run, _, plans = drive(make_run())
    assert run.status.summary is not None
    assert run.status.summary.startswith("succeeded after 2/2 iterations, best ")
    assert all(p.status.summary for p in plans)
