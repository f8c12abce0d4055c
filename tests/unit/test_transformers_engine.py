"""The transformers engine: shapes, determinism, greedy decoding, stopping."""

from __future__ import annotations

import pytest

from selftaught.engines import make_engine
from selftaught.engines.transformers import TransformersEngine
from tests.unit.stage_env import small_model

CONVERSATIONS = [
    [{"role": "user", "content": "answer: add 1 2"}],
    [{"role": "user", "content": "judge: max 1 2 3 4 | A: 4 | B: 1"}],
    [{"role": "user", "content": "similar: sub 5 2"}],
]


@pytest.fixture(scope="module")
def engine() -> TransformersEngine:
    return TransformersEngine(small_model(), batch_size=4)


def sample(engine: TransformersEngine, *, n: int, temperature: float, seed: int) -> list[list[str]]:
    return engine.generate(
        CONVERSATIONS, n=n, temperature=temperature, top_p=0.9, max_new_tokens=10, seed=seed
    )


def test_n_samples_per_conversation_in_input_order(engine: TransformersEngine) -> None:
    out = sample(engine, n=3, temperature=1.0, seed=0)
    assert [len(samples) for samples in out] == [3, 3, 3]
    assert all(isinstance(s, str) and "<|" not in s for samples in out for s in samples)


def test_same_seed_same_samples_other_seed_other_samples(engine: TransformersEngine) -> None:
    first = sample(engine, n=4, temperature=1.0, seed=1)
    assert sample(engine, n=4, temperature=1.0, seed=1) == first
    assert sample(engine, n=4, temperature=1.0, seed=2) != first


def test_greedy_samples_are_identical(engine: TransformersEngine) -> None:
    out = sample(engine, n=2, temperature=0.0, seed=0)
    assert all(samples[0] == samples[1] for samples in out)


def test_order_and_batching_do_not_change_greedy_output(engine: TransformersEngine) -> None:
    alone = [
        engine.generate([c], n=1, temperature=0.0, top_p=1.0, max_new_tokens=10, seed=0)[0]
        for c in CONVERSATIONS
    ]
    assert sample(engine, n=1, temperature=0.0, seed=0) == alone


def test_respects_max_new_tokens(engine: TransformersEngine) -> None:
    engine.generate(CONVERSATIONS, n=2, temperature=1.0, top_p=1.0, max_new_tokens=3, seed=0)
    assert engine.last_generated_tokens <= len(CONVERSATIONS) * 2 * 4


def test_make_engine_picks_by_name() -> None:
    assert isinstance(make_engine("transformers", small_model()), TransformersEngine)
    with pytest.raises(ValueError, match="unknown engine"):
        make_engine("tgi", small_model())


def test_prompts_are_tokenized_as_the_chat_template_tokenizes_them(
    engine: TransformersEngine,
) -> None:
    """Batched rendering is an optimisation only: the ids match the per-chat library call."""
    expected = [
        list(
            engine.tokenizer.apply_chat_template(
                c, add_generation_prompt=True, tokenize=True, return_dict=False
            )
        )
        for c in CONVERSATIONS
    ]
    assert engine._render(CONVERSATIONS) == expected
    assert engine._render(CONVERSATIONS[:1]) == expected[:1]
    assert engine._render([]) == []
