"""Adaptive rejection sampling's round scheduler (selftaught.rounds): pure, engine faked."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from selftaught.rounds import Rounds, round_seed, sample_in_rounds


class Recorder:
    """A fake engine: item i's sample number s (counted over all rounds) is "ok" from
    ``first_ok[i]`` on; every sample costs 10 tokens; an item with ``first_ok`` -1 is too long."""

    def __init__(self, first_ok: list[int | None]) -> None:
        self.first_ok = first_ok
        self.drawn = [0] * len(first_ok)
        self.calls: list[tuple[list[int], int, int]] = []

    def __call__(self, items: list[int], n: int, seed: int) -> tuple[list[list[str]], int]:
        self.calls.append((list(items), n, seed))
        out: list[list[str]] = []
        for i in items:
            if self.first_ok[i] == -1:
                out.append([])
                continue
            start, self.drawn[i] = self.drawn[i], self.drawn[i] + n
            first = self.first_ok[i]
            out.append(
                [
                    "ok" if first is not None and s >= first else "no"
                    for s in range(start, start + n)
                ]
            )
        return out, 10 * sum(len(o) for o in out)


def run(
    first_ok: list[int | None], *, budget: int, k: int, seed: int = 7
) -> tuple[Rounds[int], Recorder]:
    engine = Recorder(first_ok)
    result = sample_in_rounds(
        list(range(len(first_ok))),
        generate=engine,
        done=lambda _item, samples: "ok" in samples,
        budget=budget,
        round_size=k,
        seed=seed,
    )
    return result, engine


def test_fixed_sampling_is_one_call_with_n_samples_and_the_stage_seed() -> None:
    result, engine = run([0, None, 3], budget=5, k=5)
    assert engine.calls == [([0, 1, 2], 5, 7)]
    assert [len(s) for s in result.samples] == [5, 5, 5]
    assert (result.rounds, result.drawn, result.tokens) == (1, 15, 150)


@pytest.mark.parametrize(
    ("first_ok", "k", "drawn"),
    [
        pytest.param([0], 1, [1], id="first-sample-correct-k1"),
        pytest.param([0], 3, [3], id="first-round-correct-k3"),
        pytest.param([4], 1, [5], id="fifth-sample-correct-k1"),
        pytest.param([4], 2, [6], id="fifth-sample-correct-k2-third-round"),
        pytest.param([0, 2, None], 2, [2, 4, 8], id="each-item-stops-on-its-own"),
    ],
)
def test_an_item_stops_at_the_end_of_the_round_with_its_first_keepable_sample(
    first_ok: list[int | None], k: int, drawn: list[int]
) -> None:
    result, _ = run(first_ok, budget=8, k=k)
    assert [len(s) for s in result.samples] == drawn
    assert result.drawn == sum(drawn)


@pytest.mark.parametrize(
    ("budget", "k", "ns"),
    [
        pytest.param(5, 2, [2, 2, 1], id="last-round-cut-to-the-budget"),
        pytest.param(15, 4, [4, 4, 4, 3], id="paper-N-k4"),
        pytest.param(3, 1, [1, 1, 1], id="k1"),
        pytest.param(2, 8, [2], id="round-larger-than-budget"),
    ],
)
def test_never_keepable_items_draw_exactly_the_budget(budget: int, k: int, ns: list[int]) -> None:
    result, engine = run([None, None], budget=budget, k=k)
    assert [n for _, n, _ in engine.calls] == ns
    assert [len(s) for s in result.samples] == [budget, budget]


def test_each_round_is_one_call_over_the_items_still_open() -> None:
    _, engine = run([0, 1, None, 5], budget=6, k=1)
    assert [items for items, _, _ in engine.calls] == [
        [0, 1, 2, 3],
        [1, 2, 3],
        [2, 3],
        [2, 3],
        [2, 3],
        [2, 3],
    ]


def test_items_the_engine_cannot_fit_are_skipped_after_one_call() -> None:
    result, engine = run([-1, None], budget=4, k=2)
    assert result.skipped == {0}
    assert result.samples[0] == []
    assert [items for items, _, _ in engine.calls] == [[0, 1], [1]]


def test_rounds_have_distinct_seeds_derived_from_the_stage_seed() -> None:
    _, engine = run([None], budget=6, k=1, seed=11)
    seeds = [seed for _, _, seed in engine.calls]
    assert seeds[0] == 11
    assert len(set(seeds)) == 6
    assert seeds == [round_seed(11, r) for r in range(6)]
    assert all(0 <= s < 2**31 for s in seeds)


def seeded_engine(items: list[int], n: int, seed: int) -> tuple[list[list[str]], int]:
    """Samples that depend only on (item, seed, index): a deterministic stochastic engine."""

    def draw(item: int, j: int) -> str:
        digest = hashlib.sha256(f"{item}/{seed}/{j}".encode()).digest()
        return "ok" if digest[0] < 90 else f"no-{digest[1]}"

    return [[draw(i, j) for j in range(n)] for i in items], n * len(items)


def sample(seed: int) -> Any:
    return sample_in_rounds(
        list(range(40)),
        generate=seeded_engine,
        done=lambda _i, s: "ok" in s,
        budget=15,
        round_size=2,
        seed=seed,
    )


def test_the_same_seed_reproduces_every_sample_and_a_new_seed_changes_them() -> None:
    first, retry, other = sample(5), sample(5), sample(6)
    assert first == retry
    assert first.samples != other.samples


def test_bad_budget_or_round_size_is_refused() -> None:
    with pytest.raises(ValueError, match="round_size"):
        run([None], budget=3, k=0)
    with pytest.raises(ValueError, match="budget"):
        run([None], budget=0, k=1)


def test_an_engine_that_loses_prompts_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="returned 0 results for 1"):
        sample_in_rounds(
            [1], generate=lambda *_: ([], 0), done=lambda *_: True, budget=2, round_size=1, seed=0
        )
