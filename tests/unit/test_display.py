"""The iterations table (``selftaught status`` and a local run's end): official and partial sets."""

from __future__ import annotations

from rich.console import Console

from selftaught.api import IterationRecord, RunStatus
from selftaught.local.display import iterations_table
from selftaught.scoring import REWARDBENCH_ROWS, ExampleResult, score_set
from selftaught.summaries import SetScores


def rendered(status: RunStatus) -> str:
    console = Console(record=True, width=250, color_system=None)
    console.print(iterations_table(status))
    return console.export_text()


def official(counts: dict[str, int], correct: float) -> SetScores:
    data = [
        ExampleResult(subset, 1.0 if i < n * correct else 0.0)
        for subset, n in counts.items()
        for i in range(n)
    ]
    return SetScores.model_validate(score_set(data, "official"))


def test_partial_rewardbench_set_is_marked_in_cell_and_caption() -> None:
    partial = official({"alpacaeval-easy": 10, "refusals-dangerous": 10}, 0.5)
    heldout = SetScores.model_validate(score_set([ExampleResult("heldout", 1.0)]))
    status = RunStatus(
        history=[IterationRecord(iteration=0, scores={"rb": partial, "heldout": heldout})]
    )
    text = rendered(status)
    assert "rb (official)" in text
    assert "0.500 partial" in text
    assert (
        "rb: partial RewardBench set (20/2985 rows, sections missing: Chat Hard, Reasoning)" in text
    )
    assert "not a RewardBench score" in text
    assert "rb: Chat 0.50, Safety 0.50" in text  # per-section scores of an official set
    assert "heldout (" not in text  # lenient sets keep their plain name


def test_complete_rewardbench_set_has_no_partial_mark() -> None:
    complete = official(dict(REWARDBENCH_ROWS), 1.0)
    text = rendered(RunStatus(history=[IterationRecord(iteration=0, scores={"rb": complete})]))
    assert "1.000" in text
    assert "partial" not in text
    assert "Chat 1.00, Chat Hard 1.00, Reasoning 1.00, Safety 1.00" in text


def test_cost_columns_show_tokens_gpu_seconds_by_stage_and_hours_per_point() -> None:
    record = IterationRecord(
        iteration=1,
        judgments_sampled=600,
        judgments_kept=300,
        judging_tokens=12_345,
        tokens_per_kept=41.2,
        stage_gpu_seconds={"judge": 64.0, "train": 4.0, "evaluate": 0.0},
        gpu_hours_per_point=0.0125,
    )
    text = rendered(RunStatus(history=[IterationRecord(iteration=0), record]))
    for header in ("tokens", "tok/kept", "GPU-s by stage", "GPU-h/point"):
        assert header in text
    assert "12,345" in text
    assert "41.2" in text
    assert "judge 64, train 4" in text
    assert "evaluate 0" not in text  # a stage without GPUs is left out
    assert "0.0125" in text
    cpu = RunStatus(history=[IterationRecord(iteration=0, stage_gpu_seconds={"select": 0.0})])
    assert "GPU-s by stage" not in rendered(cpu)  # a CPU run has no GPU columns
