"""The warm start's examples: what each phase shows the seed, and how it is tokenised."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from selftaught import prompts
from selftaught.tiny import task
from selftaught.tiny.model import build_base_model
from selftaught.tiny.warmstart import (
    Encoder,
    WarmStartPlan,
    judge_phase_example,
    judgment_example,
    restate_example,
    skill_example,
)
from tests.unit.stage_env import SMALL


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> object:
    from transformers import AutoTokenizer

    model = build_base_model(tmp_path_factory.mktemp("base"), seed=0, shape=SMALL)
    return AutoTokenizer.from_pretrained(Path(model), padding_side="left")


def test_restating_shows_the_judgments_prefix_up_to_the_computation() -> None:
    rng = random.Random(0)
    for op in task.OPS:
        problem = task.random_problem(rng, op)
        conversation, text, whole = restate_example(rng, problem)
        assert not whole
        assert text.endswith(f". {problem.text}")
        assert "=" not in text and "[[" not in text
        assert conversation[0]["content"].startswith(f"judge: {problem.text} |")


def test_judgments_with_no_right_candidate_name_none_and_give_no_verdict() -> None:
    rng = random.Random(1)
    for _ in range(50):
        problem = task.random_problem(rng, "add")
        _, text, whole = judgment_example(rng, problem, neither=True)
        assert whole
        assert text.endswith(f"= {problem.answer} none")
        assert prompts.parse_verdict(text) is None


def test_labelled_judgments_cover_only_the_seen_operations() -> None:
    rng = random.Random(2)
    plan = WarmStartPlan(replay=0.0, neither=0.0)
    for _ in range(200):
        conversation, text, _ = judge_phase_example(rng, plan)
        problem = task.parse_problem(conversation[0]["content"].split(" | ")[0][len("judge: ") :])
        assert problem is not None and problem.op in task.SEEN_OPS
        assert prompts.parse_verdict(text) is not None


def test_unseen_operations_get_no_verdict_in_phase_one() -> None:
    rng = random.Random(3)
    for _ in range(500):
        conversation, text, _ = skill_example(rng, restate=0.3)
        if conversation[0]["content"].startswith("judge:"):
            assert prompts.parse_verdict(text) is None


def test_encoder_matches_the_chat_template(tokenizer: object) -> None:
    rng = random.Random(4)
    examples = [skill_example(rng, restate=0.3) for _ in range(200)]
    for example, (ids, labels) in zip(examples, Encoder(tokenizer)(examples), strict=True):
        conversation, text, whole = example
        prompt_ids = tokenizer.apply_chat_template(  # type: ignore[attr-defined]
            conversation, add_generation_prompt=True, return_dict=False
        )
        full = list(
            tokenizer.apply_chat_template(  # type: ignore[attr-defined]
                [*conversation, {"role": "assistant", "content": text}], return_dict=False
            )
        )
        expected = full if whole else full[:-1]  # a partial target has no end token
        assert ids == expected
        assert labels == [-100] * len(prompt_ids) + expected[len(prompt_ids) :]
