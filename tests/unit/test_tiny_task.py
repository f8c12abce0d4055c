"""The built-in task: deterministic, checkable, with a seen/unseen split."""

from __future__ import annotations

import itertools
import random

import pytest

from selftaught.tiny import task


def all_problems() -> list[task.Problem]:
    found = []
    for op in task.OPS:
        for args in itertools.product(range(10), repeat=task.ARITY[op]):
            problem = task.parse_problem(" ".join([op, *map(str, args)]))
            if problem:
                found.append(problem)
    return found


SOLVED = [
    ("add", (2, 3), "5"),
    ("sub", (7, 2), "5"),
    ("max", (1, 9, 4, 2), "9"),
    ("min", (1, 9, 4, 2), "1"),
]


@pytest.mark.parametrize(("op", "args", "answer"), SOLVED, ids=[s[0] for s in SOLVED])
def test_solve(op: str, args: tuple[int, ...], answer: str) -> None:
    assert task.solve(op, args) == answer


def test_pool_is_deterministic_per_seed_and_mixes_categories() -> None:
    pool = task.instruction_pool(seed=3, size=500)
    assert pool == task.instruction_pool(seed=3, size=500)
    assert pool != task.instruction_pool(seed=4, size=500)
    assert {task.category_of(x) for x in pool} == set(task.CATEGORIES)


def test_every_problem_has_a_valid_similar_problem_mostly_with_another_answer() -> None:
    problems = all_problems()
    changed = 0
    for problem in problems:
        other = task.similar_problem(problem)
        assert task.parse_problem(other.text) == other
        changed += other.answer != problem.answer
    assert changed / len(problems) > 0.99


@pytest.mark.parametrize(
    "text",
    ["add 5 5", "sub 1 2", "max 1 2", "add 1 22", "greet bob", "", "mul 2 3"],
    ids=["sum-too-big", "negative", "wrong-arity", "two-digits", "chat", "empty", "unknown-op"],
)
def test_parse_problem_rejects(text: str) -> None:
    assert task.parse_problem(text) is None


def test_seen_and_unseen_split_the_operations() -> None:
    assert set(task.OPS) == task.SEEN_OPS | task.UNSEEN_OPS
    assert not task.SEEN_OPS & task.UNSEEN_OPS
    assert task.part_of("add 1 2") == "seen"
    assert task.part_of("sub 3 1") == "unseen"
    assert task.part_of("greet bob") is None


@pytest.mark.parametrize("winner", ["A", "B"])
def test_judgment_text_reasons_to_the_right_verdict(winner: str) -> None:
    rng = random.Random(0)
    for _ in range(50):
        problem = task.random_problem(rng)
        loser = task.similar_problem(problem).answer
        if loser == problem.answer:
            continue
        a, b = (problem.answer, loser) if winner == "A" else (loser, problem.answer)
        text = task.judgment_text(problem, a, b)
        assert text.endswith(f"[[{winner}]]")
        assert task.implied_verdict(text) == winner


IMPLIED = [
    ("a", "3 A . 4 B . add 1 2 = 3 A . [[A]]", "A"),
    ("b", "3 A . 4 B . add 1 3 = 4 B . [[A]]", "B"),
    ("no-match", "3 A . 4 B . add 1 4 = 5 none", None),
    ("both-match", "3 A . 3 B . add 1 2 = 3 A . [[A]]", None),
    ("garbled", "[[A]]", None),
]


@pytest.mark.parametrize(
    ("text", "expected"), [i[1:] for i in IMPLIED], ids=[i[0] for i in IMPLIED]
)
def test_implied_verdict(text: str, expected: str | None) -> None:
    assert task.implied_verdict(text) == expected
