"""The prompt-length budget: a prompt whose tokens plus the tokens to generate exceed the
model's context never fails a stage. The transformers engine skips it (no samples), select
drops the instructions that could not fit later prompts (counted, with line numbers), and
evaluate leaves such examples out of the scores (counted, with a warning). The vLLM engine's
side, with a fake ``vllm`` that refuses as vLLM does, is in test_vllm_engine.py.

The small test model has 128 positions; the test spec generates 6 tokens per pair answer and
24 per judgment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from selftaught.artifacts import stage_prefix
from selftaught.engines.base import context_of, fits
from selftaught.engines.transformers import TransformersEngine
from selftaught.phases import Stage
from selftaught.pod import BadInput
from selftaught.stages import evaluate, pairs, select
from selftaught.storage import FileStorage, MemoryStorage
from tests.unit.stage_env import small_model, spec, task

TOO_LONG = "add " + " ".join(str(i % 10) for i in range(150))


@pytest.mark.parametrize(
    ("prompt", "new", "context", "expected"),
    [
        (100, 28, 128, True),
        (100, 29, 128, False),
        (128, 0, 128, True),
        (10_000, 4096, None, True),  # unknown context: the engine decides
    ],
    ids=["exactly-full", "one-over", "no-room-needed", "unknown-context"],
)
def test_fits(prompt: int, new: int, context: int | None, expected: bool) -> None:
    assert fits(prompt, new, context) is expected


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"max_position_embeddings": 8192}, 8192),
        ({"n_positions": 1024}, 1024),
        ({"hidden_size": 64}, None),
        ({"max_position_embeddings": True}, None),
    ],
    ids=["llama", "gpt2", "none", "not-a-number"],
)
def test_context_of_a_config(config: dict[str, object], expected: int | None) -> None:
    assert context_of(config) == expected


def test_the_transformers_engine_skips_a_prompt_that_cannot_fit() -> None:
    engine = TransformersEngine(small_model(), batch_size=4)
    assert engine.context_length == 128
    short = [{"role": "user", "content": "answer: add 1 2"}]
    long = [{"role": "user", "content": f"answer: {TOO_LONG}"}]
    out = engine.generate(
        [short, long, short], n=2, temperature=1.0, top_p=1.0, max_new_tokens=8, seed=0
    )
    assert [len(samples) for samples in out] == [2, 0, 2]


def test_select_drops_and_reports_instructions_that_cannot_fit(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    lines = ["add 1 2", TOO_LONG, "max 1 2 3 4", f"{TOO_LONG} 7", "sub 5 2"]
    pool.write_text("".join(json.dumps({"instruction": line}) + "\n" for line in lines))
    run_spec = spec(instructions={"source": pool.as_uri(), "categories": ["math", "list", "other"]})
    storage = MemoryStorage()
    summary = select.run(task(Stage.SELECT, run_spec), storage, 0).to_wire()
    assert summary["skippedTooLong"] == 2
    assert summary["tooLongLineNumbers"] == [2, 4]
    assert summary["read"] == 5
    prefix = stage_prefix("ns", "r", 0, Stage.SELECT)
    kept = [row["instruction"] for _, row in storage.read_jsonl(f"{prefix}/instructions.jsonl")]
    assert kept
    assert all(TOO_LONG not in text for text in kept)


def test_select_with_only_over_long_instructions_is_bad_input(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text(json.dumps({"instruction": TOO_LONG}) + "\n")
    run_spec = spec(instructions={"source": pool.as_uri(), "categories": ["math"]})
    with pytest.raises(BadInput, match="no instruction fits the model's context of 128 tokens"):
        select.run(task(Stage.SELECT, run_spec), MemoryStorage(), 0)


def test_evaluate_skips_and_counts_examples_that_cannot_fit(tmp_path: Path) -> None:
    data = tmp_path / "rb.jsonl"
    good = {"prompt": "add 1 2", "chosen": "3", "rejected": "4", "subset": "math-prm"}
    long = {**good, "chosen": TOO_LONG}
    data.write_text("\n".join(json.dumps(row) for row in (good, long, good)))
    run_spec = spec(
        evaluation={
            "heldOutFraction": 0.25,
            "maxNewTokens": 24,
            "datasets": [{"name": "rb", "uri": data.as_uri()}],
        }
    )
    store = FileStorage((tmp_path / "store").as_uri())
    select.run(task(Stage.SELECT, run_spec), store, 0)
    pairs.run(task(Stage.PAIRS, run_spec), store, 0)
    summary = evaluate.run(task(Stage.EVALUATE, run_spec), store, 0).to_wire()
    assert summary["scores"]["rb"]["examples"] == 2
    assert summary["skippedTooLong"] == {"heldout": 0, "rb": 1}
    assert any("rb: 1 example(s) skipped" in w for w in summary["warnings"])
