"""Prompt templates and the verdict parser (table-driven)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selftaught import prompts

VERDICTS = [
    ("plain-a", "A is right. [[A]]", "A"),
    ("plain-b", "[[B]]", "B"),
    ("last-wins", "Not [[A]] as one might think, but [[B]]", "B"),
    ("last-wins-reverse", "[[B]] was wrong; final: [[A]]", "A"),
    ("spaces-inside", "verdict: [[ A ]]", "A"),
    ("none", "I cannot decide.", None),
    ("empty", "", None),
    ("single-brackets", "[A]", None),
    ("lowercase", "[[a]]", None),
    ("other-letter", "[[C]]", None),
    ("truncated", "so the answer is [[", None),
    ("compact-judgment", "3 A . 4 B . add 1 2 = 3 A . [[A]]", "A"),
]


@pytest.mark.parametrize(
    ("text", "expected"), [v[1:] for v in VERDICTS], ids=[v[0] for v in VERDICTS]
)
def test_parse_verdict(text: str, expected: str | None) -> None:
    assert prompts.parse_verdict(text) == expected


CATEGORY_REPLIES = [
    ("exact", "math", "math"),
    ("capitalised", "Reasoning.", "reasoning"),
    ("first-known-wins", "coding, or maybe math", "coding"),
    ("unknown", "poetry", "other"),
    ("empty", "", "other"),
]


@pytest.mark.parametrize(
    ("reply", "expected"), [c[1:] for c in CATEGORY_REPLIES], ids=[c[0] for c in CATEGORY_REPLIES]
)
def test_parse_category(reply: str, expected: str) -> None:
    assert prompts.parse_category(reply, prompts.STANDARD_CATEGORIES) == expected


@pytest.mark.parametrize("style", ["standard", "compact"])
def test_judge_prompt_shows_question_and_both_answers_in_order(style: prompts.Style) -> None:
    [message] = prompts.judge_prompt(style, "add 1 2", "first-answer", "second-answer")
    text = message["content"]
    assert message["role"] == "user"
    assert text.index("add 1 2") < text.index("first-answer") < text.index("second-answer")


def test_standard_judge_prompt_asks_for_reasoning_then_marker() -> None:
    text = prompts.judge_prompt("standard", "q", "a", "b")[0]["content"]
    assert "[[A]]" in text
    assert "[[B]]" in text
    assert "reasoning first" in text.lower()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "standard"),
        ({"promptStyle": "compact"}, "compact"),
        ({"promptStyle": "x"}, "standard"),
    ],
    ids=["no-file", "compact", "unknown-style"],
)
def test_prompt_style(tmp_path: Path, content: dict[str, str] | None, expected: str) -> None:
    if content is not None:
        (tmp_path / prompts.STYLE_FILE).write_text(json.dumps(content))
    assert prompts.prompt_style(tmp_path) == expected


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [("Add  1 2", "add 1 2", True), (" x\ny ", "x y", True), ("add 1 2", "add 1 3", False)],
    ids=["case-and-space", "newlines", "different"],
)
def test_normalise_text(a: str, b: str, same: bool) -> None:
    assert (prompts.normalise_text(a) == prompts.normalise_text(b)) is same
