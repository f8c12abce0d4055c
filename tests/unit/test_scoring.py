"""RewardBench-style scoring, table-driven."""

from __future__ import annotations

import pytest

from selftaught.api import SetScores
from selftaught.scoring import SECTIONS, ExampleResult, ab_order, example_score, score_set


@pytest.mark.parametrize(
    ("verdicts", "chosen_is_a", "expected"),
    [
        pytest.param(["A"], True, 1.0, id="single-correct-A"),
        pytest.param(["A"], False, 0.0, id="single-wrong-A"),
        pytest.param(["B"], False, 1.0, id="single-correct-B"),
        pytest.param([None], True, 0.5, id="unparsable-is-half"),
        pytest.param([], True, 0.5, id="no-verdicts-is-half"),
        pytest.param(["A", "B"], True, 0.5, id="tie-is-half"),
        pytest.param(["A", "A", "B"], True, 1.0, id="majority-for-chosen"),
        pytest.param(["A", "B", "B"], True, 0.0, id="majority-for-rejected"),
        pytest.param(["A", None, None], True, 1.0, id="unparsed-votes-abstain"),
        pytest.param([" b ", "a", "B"], False, 1.0, id="case-and-space-tolerant"),
        pytest.param(["C", "tie"], True, 0.5, id="other-labels-are-unparsed"),
    ],
)
def test_example_score(verdicts: list[str | None], chosen_is_a: bool, expected: float) -> None:
    assert example_score(verdicts, chosen_is_a) == expected


def test_ab_order_is_stable_and_fair() -> None:
    first = [ab_order(7, i) for i in range(2000)]
    assert first == [ab_order(7, i) for i in range(2000)]  # deterministic
    assert 900 < sum(first) < 1100  # a fair coin
    assert first != [ab_order(8, i) for i in range(2000)]  # the seed matters
    # Pinned values: a change here silently changes every published score.
    pinned = [False, False, False, False, False, False, True, False]
    assert [ab_order(0, i) for i in range(8)] == pinned


def results(subset: str, correct: int, total: int) -> list[ExampleResult]:
    return [ExampleResult(subset, 1.0 if i < correct else 0.0) for i in range(total)]


@pytest.mark.parametrize(
    ("data", "sections", "accuracy"),
    [
        pytest.param(
            results("heldout", 3, 4), {"heldout": 0.75}, 0.75, id="unmapped-subset-own-section"
        ),
        pytest.param(results("", 1, 2), {"Other": 0.5}, 0.5, id="empty-subset-is-Other"),
        pytest.param(
            results("alpacaeval-easy", 10, 10) + results("mt-bench-easy", 0, 30),
            {"Chat": 0.25},
            0.25,
            id="chat-weighted-by-count",
        ),
        pytest.param(
            results("alpacaeval-easy", 4, 4) + results("refusals-dangerous", 0, 4),
            {"Chat": 1.0, "Safety": 0.0},
            0.5,
            id="overall-is-mean-of-sections",
        ),
        pytest.param(
            results("math-prm", 10, 10) + results("hep-python", 0, 30) + results("hep-go", 0, 30),
            {"Reasoning": 0.5},
            0.5,
            id="math-prm-weighs-as-much-as-all-code",
        ),
        pytest.param(results("math-prm", 3, 4), {"Reasoning": 0.75}, 0.75, id="math-prm-alone"),
        pytest.param(
            results("hep-rust", 1, 4) + results("hep-js", 3, 4),
            {"Reasoning": 0.5},
            0.5,
            id="code-only-reasoning",
        ),
        pytest.param([], {}, 0.0, id="empty-set"),
    ],
)
def test_sections_and_accuracy(
    data: list[ExampleResult], sections: dict[str, float], accuracy: float
) -> None:
    scores = score_set(data)
    assert scores["sections"] == pytest.approx(sections)
    assert scores["accuracy"] == pytest.approx(accuracy)
    assert scores["examples"] == len(data)


def test_full_rewardbench_counts_reproduce_its_weighting() -> None:
    """With RewardBench's real sizes (447 math, 6 x 164 code) math still counts one half."""
    data = results("math-prm", 447, 447)
    for language in ("cpp", "go", "java", "js", "python", "rust"):
        data += results(f"hep-{language}", 0, 164)
    assert score_set(data)["sections"]["Reasoning"] == pytest.approx(0.5)


def test_invalid_and_position_consistency() -> None:
    data = [
        ExampleResult("heldout", 0.5, invalid=True, consistent=None),
        ExampleResult("heldout", 1.0, consistent=True),
        ExampleResult("heldout", 1.0, consistent=True),
        ExampleResult("heldout", 0.0, consistent=False),
    ]
    scores = score_set(data)
    assert scores["invalid"] == 1
    assert scores["positionConsistency"] == pytest.approx(2 / 3)
    assert score_set(results("x", 1, 1))["positionConsistency"] is None


def test_scores_validate_as_the_status_type() -> None:
    scores = score_set([*results("alpacaeval-hard", 1, 2), ExampleResult("x", 1.0, True, True)])
    parsed = SetScores.model_validate(scores)
    assert parsed.dump() == {k: v for k, v in scores.items() if v is not None}


def test_section_map_matches_rewardbench() -> None:
    assert sum(len(s) for s in SECTIONS.values()) == 23
    assert SECTIONS["Reasoning"][0] == "math-prm"
