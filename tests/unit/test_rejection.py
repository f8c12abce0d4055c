"""Rejection sampling's rules: what may be kept, and A/B balance after rejection (table-driven)."""

from __future__ import annotations

import random

import pytest

from selftaught.rejection import (
    Position,
    Reason,
    balance_positions,
    classify,
    has_preference,
    preference,
)

CLASSIFY = [
    ("correct-a", "A is right. [[A]]", "A", "kept"),
    ("correct-b", "B is right. [[B]]", "B", "kept"),
    ("wrong", "A is right. [[A]]", "B", "wrong"),
    ("marker-repeated-is-fine", "[[A]] ... so, again, [[A]]", "A", "kept"),
    ("both-markers-never-kept", "Say [[A]] or [[B]]. Verdict: [[A]]", "A", "both"),
    ("both-markers-b-last", "Not [[A]]. [[B]]", "B", "both"),
    ("both-spaced-counts", "[[ B ]] is tempting; [[A]]", "A", "both"),
    ("tie-never-kept", "They are equal: [[C]]", "A", "tie"),
    ("tie-with-verdict", "[[C]]? No: [[A]]", "A", "tie"),
    ("spaced-only-unparsable", "verdict: [[ A ]]", "A", "unparsable"),
    ("lowercase-unparsable", "[[a]]", "A", "unparsable"),
    ("none", "no verdict", "B", "unparsable"),
]


@pytest.mark.parametrize(
    ("text", "winner", "expected"), [c[1:] for c in CLASSIFY], ids=[c[0] for c in CLASSIFY]
)
def test_classify(text: str, winner: Position, expected: Reason) -> None:
    assert classify(text, winner) == expected


BALANCE = [
    # (id, candidates as "pair:positions", kept A, kept B, dropped)
    ("all-flexible-split-evenly", {i: "AB" for i in range(10)}, 5, 5, 0),
    ("flexible-fill-smaller-side", {**{i: "A" for i in range(6)}, 6: "AB", 7: "AB"}, 2, 2, 4),
    ("flexible-evens-out", {0: "A", 1: "A", 2: "A", 3: "AB", 4: "AB", 5: "AB"}, 3, 3, 0),
    ("biased-judge-surplus-dropped", {**{i: "A" for i in range(9)}, 9: "B"}, 1, 1, 8),
    ("odd-total-one-apart", {0: "A", 1: "A", 2: "B"}, 2, 1, 0),
    ("empty", {}, 0, 0, 0),
]


@pytest.mark.parametrize(
    ("candidates", "kept_a", "kept_b", "dropped"),
    [pytest.param(*b[1:], id=b[0]) for b in BALANCE],
)
def test_balance_after_rejection(
    candidates: dict[int, str], kept_a: int, kept_b: int, dropped: int
) -> None:
    options = {pair: [p for p in positions if p in "AB"] for pair, positions in candidates.items()}
    balance = balance_positions(options, rng=random.Random(3))  # type: ignore[arg-type]
    sides = list(balance.chosen.values())
    # flexible pairs may go either way: compare the balance, not which pair went where
    assert sorted((sides.count("A"), sides.count("B"))) == sorted((kept_a, kept_b))
    assert balance.dropped == dropped
    for pair, side in balance.chosen.items():
        assert side in options[pair]  # a pair is only kept in an order it was correct in
    assert balance == balance_positions(options, rng=random.Random(3))  # type: ignore[arg-type]


PREFERENCE: list[tuple[str, list[Reason], Reason | None]] = [
    # (id, sample reasons, the rejected side's reason; None: no preference)
    ("right-and-wrong", ["kept", "wrong"], "wrong"),
    ("wrong-preferred-over-unparsable", ["unparsable", "kept", "wrong"], "wrong"),
    ("two-markers-may-be-rejected", ["both", "kept"], "both"),
    ("tie-before-unparsable", ["unparsable", "tie", "kept"], "tie"),
    ("unparsable-as-last-resort", ["kept", "unparsable"], "unparsable"),
    ("only-correct", ["kept", "kept"], None),
    ("no-correct", ["wrong", "both", "tie", "unparsable"], None),
    ("nothing", [], None),
]


@pytest.mark.parametrize(
    ("reasons", "rejected_reason"),
    [pytest.param(*p[1:], id=p[0]) for p in PREFERENCE],
)
def test_dpo_preference_chooses_kept_and_rejects_the_best_incorrect(
    reasons: list[Reason], rejected_reason: Reason | None
) -> None:
    texts = [f"{reason}-{i}" for i, reason in enumerate(reasons)]
    choice = preference(texts, reasons, rng=random.Random(0))
    assert has_preference(reasons) == (rejected_reason is not None)
    if rejected_reason is None:
        assert choice is None
        return
    assert choice is not None
    assert choice.chosen.startswith("kept-")  # never a two-marker, tie or unparsable text
    assert choice.rejected.startswith(f"{rejected_reason}-")
    assert choice.rejected_reason == rejected_reason
    assert choice == preference(texts, reasons, rng=random.Random(0))


def test_dpo_preference_refuses_misaligned_inputs() -> None:
    with pytest.raises(ValueError, match="2 judgments but 1 reasons"):
        preference(["a", "b"], ["kept"], rng=random.Random(0))
