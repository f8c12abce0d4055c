"""Cost figures of a run (selftaught.cost): tokens per kept judgment, GPU-hours per point."""

from __future__ import annotations

import pytest

from selftaught.api import IterationRecord
from selftaught.cost import gpu_hours_per_point, tokens_per_kept
from selftaught.summaries import SetScores


def record(iteration: int, gpu_seconds: float, accuracy: float | None) -> IterationRecord:
    scores = {} if accuracy is None else {"heldout": SetScores(accuracy=accuracy)}
    return IterationRecord(iteration=iteration, gpu_seconds=gpu_seconds, scores=scores)


@pytest.mark.parametrize(
    ("tokens", "kept", "expected"),
    [
        pytest.param(3000, 40, 75.0, id="ratio"),
        pytest.param(100, 3, 33.3, id="rounded"),
        pytest.param(500, 0, None, id="nothing-kept"),
    ],
)
def test_tokens_per_kept(tokens: int, kept: int, expected: float | None) -> None:
    assert tokens_per_kept(tokens, kept) == expected


HISTORY = [record(0, 3600, 0.60), record(1, 7200, 0.65), record(2, 7200, 0.70)]


@pytest.mark.parametrize(
    ("history", "iteration", "expected"),
    [
        pytest.param(HISTORY, 1, 3 / 5, id="three-hours-five-points"),
        pytest.param(HISTORY, 2, 5 / 10, id="all-iterations-so-far"),
        pytest.param(HISTORY, 0, None, id="baseline-has-no-gain"),
        pytest.param([record(0, 1, 0.6), record(1, 1, 0.55)], 1, None, id="accuracy-fell"),
        pytest.param([record(0, 1, 0.6), record(1, 1, 0.6)], 1, None, id="no-gain"),
        pytest.param([record(0, 1, None), record(1, 1, 0.7)], 1, None, id="no-baseline"),
        pytest.param([record(0, 1, 0.6), record(1, 1, None)], 1, None, id="not-evaluated"),
        pytest.param(HISTORY, 5, None, id="beyond-history"),
    ],
)
def test_gpu_hours_per_point(
    history: list[IterationRecord], iteration: int, expected: float | None
) -> None:
    result = gpu_hours_per_point(history, iteration)
    assert result == (None if expected is None else pytest.approx(expected))
