"""The warm start's examples: what each phase shows the seed, and how it is tokenised."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from selftaught import prompts
from selftaught.tiny import task
from selftaught.tiny.model import build_base_model
from selftaught.tiny.warmstart import (
    Encoder,
    WarmStartPlan,
    judge_phase_example,
    judgment_example,
    lookup_example,
    skill_example,
)
from tests.unit.stage_env import SMALL


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from transformers import AutoTokenizer

    model = build_base_model(tmp_path_factory.mktemp("base"), seed=0, shape=SMALL)
    return AutoTokenizer.from_pretrained(Path(model), padding_side="left")


def test_lookup_judges_from_a_given_value_without_solving() -> None:
    rng = random.Random(0)
    named = set()
    for op in sorted(task.OPS) * 25:
        problem = task.random_problem(rng, op)
        conversation, text, hidden = lookup_example(rng, problem)
        assert hidden is not None
        assert conversation[0]["content"].startswith(f"judge: {problem.text} |")
        assert text[hidden[0] : hidden[1]].strip() == text.split(" = ")[1].split()[0]
        implied = task.implied_verdict(text)
        assert prompts.parse_verdict(text) == implied  # the verdict follows the given value
        named.add(implied)
    assert named == {"A", "B", None}


def test_judgments_with_no_right_candidate_name_none_and_give_no_verdict() -> None:
    rng = random.Random(1)
    for _ in range(50):
        problem = task.random_problem(rng, "add")
        _, text, _ = judgment_example(rng, problem, neither=True)
        assert text.endswith(f"= {problem.answer} none")
        assert prompts.parse_verdict(text) is None


def test_labelled_judgments_cover_only_the_seen_operations() -> None:
    rng = random.Random(2)
    plan = WarmStartPlan(replay=0.0, neither=0.0)
    for _ in range(200):
        conversation, text, _ = judge_phase_example(rng, plan)
        problem = task.parse_problem(conversation[0]["content"].split(" | ")[0][len("judge: ") :])
        assert problem is not None
        assert problem.op in task.SEEN_OPS
        assert prompts.parse_verdict(text) is not None


def test_phase_one_judging_prompts_never_learn_the_solution() -> None:
    rng = random.Random(3)
    plan = WarmStartPlan(lookup=0.3)
    for _ in range(500):
        conversation, _, hidden = skill_example(rng, plan)
        if conversation[0]["content"].startswith("judge:"):
            assert hidden is not None  # the value after "=" is given, not learnt


def test_checking_shows_unseen_operations_only_from_the_threshold() -> None:
    rng = random.Random(5)
    plan = WarmStartPlan(lookup=0.0, check_unseen_from=5)
    parts = []
    for _ in range(4000):
        conversation, _, _ = skill_example(rng, plan)
        content = conversation[0]["content"]
        if content.startswith("check:"):
            problem = task.parse_problem(content[len("check: ") :].split(" | ")[0])
            assert problem is not None
            assert problem.part == "seen" or int(problem.answer) >= 5
            parts.append(problem.part)
    assert 0.05 < parts.count("unseen") / len(parts) < 0.35


def test_encoder_matches_the_chat_template(tokenizer: Any) -> None:
    rng = random.Random(4)
    examples = [skill_example(rng, WarmStartPlan(lookup=0.3)) for _ in range(200)]
    for example, (ids, labels) in zip(examples, Encoder(tokenizer)(examples), strict=True):
        conversation, text, hidden = example
        prompt_ids = tokenizer.apply_chat_template(
            conversation, add_generation_prompt=True, return_dict=False
        )
        full = list(
            tokenizer.apply_chat_template(
                [*conversation, {"role": "assistant", "content": text}], return_dict=False
            )
        )
        assert ids == full
        learnt = [-100] * len(prompt_ids) + full[len(prompt_ids) :]
        if hidden:  # exactly one token, the given value, is input only
            differs = [i for i, (a, b) in enumerate(zip(labels, learnt, strict=True)) if a != b]
            assert len(differs) == 1
            assert labels[differs[0]] == -100
            assert (
                tokenizer.decode([ids[differs[0]]]).strip() == text[hidden[0] : hidden[1]].strip()
            )
        else:
            assert labels == learnt
