"""The stages in order on a tiny model: files committed, counts consistent, shards disjoint.

Accuracy is not asserted here (benchmarks/loop_accuracy.py and the slow integration test do);
the model is a 1-layer one after a few warm-start steps.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from selftaught.artifacts import model_prefix, shard_prefix, stage_prefix
from selftaught.phases import Stage
from selftaught.pod import BadInput
from selftaught.stages import evaluate, judge, pairs, select, train
from selftaught.storage import FileStorage, MemoryStorage, Storage
from selftaught.summaries import JudgeSummary, PairsSummary, SelectSummary, SetScores
from tests.unit.stage_env import spec, task

PAIRS_SHARDS, JUDGE_SHARDS = 2, 2


@pytest.fixture(scope="module")
def storage() -> MemoryStorage:
    return MemoryStorage("stages")


@pytest.fixture(scope="module")
def run_spec() -> Any:
    return spec(pairs_shards=PAIRS_SHARDS, judge_shards=JUDGE_SHARDS)


def rows(storage: Storage, key: str) -> list[dict[str, Any]]:
    return [row for _, row in storage.read_jsonl(key)]


@pytest.fixture(scope="module")
def selected(storage: MemoryStorage, run_spec: Any) -> SelectSummary:
    return select.run(task(Stage.SELECT, run_spec), storage, 0)


@pytest.fixture(scope="module")
def paired(storage: MemoryStorage, run_spec: Any, selected: SelectSummary) -> list[PairsSummary]:
    return [
        pairs.run(task(Stage.PAIRS, run_spec, shards=PAIRS_SHARDS), storage, s)
        for s in range(PAIRS_SHARDS)
    ]


@pytest.fixture(scope="module")
def judged(storage: MemoryStorage, run_spec: Any, paired: list[PairsSummary]) -> list[JudgeSummary]:
    return [
        judge.run(task(Stage.JUDGE, run_spec, iteration=1, shards=JUDGE_SHARDS), storage, s)
        for s in range(JUDGE_SHARDS)
    ]


def test_select_commits_split_and_deduplicated_instructions(
    storage: MemoryStorage, selected: SelectSummary
) -> None:
    prefix = stage_prefix("ns", "r", 0, Stage.SELECT)
    assert storage.is_committed(prefix)
    found = rows(storage, f"{prefix}/instructions.jsonl")
    assert selected.instructions == len(found) <= 60
    assert selected.heldout == sum(r["split"] == "heldout" for r in found) >= 1
    assert len({r["instruction"].lower() for r in found}) == len(found)
    assert selected.bad_lines == 0
    assert selected.read >= len(found)


def test_pairs_shards_are_disjoint_and_account_for_every_instruction(
    storage: MemoryStorage, selected: SelectSummary, paired: list[PairsSummary]
) -> None:
    ids: list[int] = []
    for shard, summary in enumerate(paired):
        prefix = shard_prefix("ns", "r", 0, Stage.PAIRS, shard)
        assert storage.is_committed(prefix)
        found = rows(storage, f"{prefix}/pairs.jsonl")
        assert all(r["id"] % PAIRS_SHARDS == shard for r in found)
        assert summary.pairs + summary.heldout_pairs == len(found)
        assert all(
            r["chosen"] != r["rejected"] and r["instruction"] != r["otherInstruction"]
            for r in found
        )
        ids += [r["id"] for r in found]
    assert len(ids) == len(set(ids))
    assert len(ids) + sum(s.failed for s in paired) == selected.instructions


def test_judge_keeps_only_correct_verdicts_in_trl_form(
    storage: MemoryStorage, paired: list[PairsSummary], judged: list[JudgeSummary]
) -> None:
    from selftaught.prompts import parse_verdict

    assert sum(s.pairs for s in judged) == sum(s.pairs for s in paired)
    pair_ids: list[int] = []
    for shard, summary in enumerate(judged):
        prefix = shard_prefix("ns", "r", 1, Stage.JUDGE, shard)
        found = rows(storage, f"{prefix}/judgments.jsonl")
        assert summary.kept == len(found) <= summary.pairs
        assert summary.sampled == 3 * summary.pairs
        for row in found:
            assert row["prompt"][0]["role"] == "user"
            assert parse_verdict(row["completion"][0]["content"]) == row["winner"]
        pair_ids += [r["pairId"] for r in found]
    assert len(pair_ids) == len(set(pair_ids))


def test_winner_positions_are_balanced_and_seeded(run_spec: Any) -> None:
    positions = judge.winner_positions(task(Stage.JUDGE, run_spec, iteration=1), 101)
    assert positions.count("A") == 50
    assert positions == judge.winner_positions(task(Stage.JUDGE, run_spec, iteration=1), 101)


def test_train_then_evaluate_the_trained_judge(tmp_path: Path, run_spec: Any) -> None:
    store = FileStorage(tmp_path.as_uri())
    select.run(task(Stage.SELECT, run_spec), store, 0)
    for s in range(PAIRS_SHARDS):
        pairs.run(task(Stage.PAIRS, run_spec, shards=PAIRS_SHARDS), store, s)
    # Hand-written judgments: mechanics of the merge and training, independent of the judge.
    for shard in range(JUDGE_SHARDS):
        prefix = shard_prefix("ns", "r", 1, Stage.JUDGE, shard)
        example = {
            "prompt": [
                {"role": "user", "content": f"judge: add 1 {shard} | A: 9 | B: {1 + shard}"}
            ],
            "completion": [{"role": "assistant", "content": "[[B]]"}],
        }
        with store.output(prefix) as out:
            out.write_jsonl("judgments.jsonl", [example] * 5)
    trained = train.run(
        task(Stage.TRAIN, run_spec, iteration=1, init_model=run_spec.seed_model), store, 0
    )
    assert trained.examples == 10
    assert trained.steps >= 1
    assert trained.model == store.uri_for(model_prefix("ns", "r", 1))
    assert store.is_committed(stage_prefix("ns", "r", 1, Stage.TRAIN))

    summary = evaluate.run(
        task(Stage.EVALUATE, run_spec, iteration=1, model=trained.model), store, 0
    )
    heldout = summary.scores["heldout"]
    assert 0.0 <= heldout.accuracy <= 1.0
    assert heldout.examples >= 1
    parts = [
        summary.scores[k].examples
        for k in ("heldout-seen", "heldout-unseen")
        if k in summary.scores
    ]
    assert sum(parts) <= heldout.examples  # chat instructions the weak model kept are neither
    scores = json.loads(
        store.read_bytes(f"{stage_prefix('ns', 'r', 1, Stage.EVALUATE)}/scores.json")
    )
    assert SetScores.model_validate(scores["scores"]["heldout"]) == heldout


def test_evaluate_scores_a_rewardbench_file_and_counts_bad_lines(tmp_path: Path) -> None:
    data = tmp_path / "rb.jsonl"
    good = {"prompt": "add 1 2", "chosen": "3", "rejected": "4", "subset": "math-prm"}
    data.write_text(
        "\n".join([json.dumps(good), "{not json", json.dumps({"prompt": "x"}), json.dumps(good)])
    )
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
    summary = evaluate.run(task(Stage.EVALUATE, run_spec), store, 0)
    assert summary.scores["rb"].examples == 2
    assert any("2 bad line" in w for w in summary.warnings or [])


def test_select_reports_bad_lines_and_rejects_an_unusable_pool(tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    pool.write_text(
        '{"instruction": "add 1 2"}\nnot json\n{"other": 1}\n{"instruction": "max 1 2 3 4"}\n'
    )
    run_spec = spec(instructions={"source": pool.as_uri(), "categories": ["math", "list", "other"]})
    summary = select.run(task(Stage.SELECT, run_spec), MemoryStorage(), 0)
    assert summary.bad_lines == 2
    assert summary.bad_line_numbers == [2, 3]
    assert summary.read == 4
    pool.write_text("nope\n")
    with pytest.raises(BadInput, match="no usable line"):
        select.run(task(Stage.SELECT, run_spec), MemoryStorage(), 0)


def test_sft_arguments_carry_paper_settings_unchanged() -> None:
    run_spec = spec(
        training={
            "learningRate": 1e-6,
            "lrScheduler": "cosine",
            "warmupSteps": 100,
            "epochs": 2,
            "batchSize": 16,
            "microBatchSize": 2,
            "maxLength": 4096,
        }
    )
    args = train.sft_arguments(task(Stage.TRAIN, run_spec, iteration=1), gpu=True, world=4)
    assert (args["learning_rate"], args["lr_scheduler_type"], args["warmup_steps"]) == (
        1e-6,
        "cosine",
        100,
    )
    assert (args["num_train_epochs"], args["per_device_train_batch_size"]) == (2.0, 2)
    assert args["gradient_accumulation_steps"] == 2  # 16 = 2 per device x 4 ranks x 2
    assert args["bf16"]
    assert not args["use_cpu"]
    assert args["max_length"] == 4096
    cpu = train.sft_arguments(task(Stage.TRAIN, run_spec, iteration=1))
    assert not cpu["bf16"]
    assert cpu["use_cpu"]
    assert cpu["save_strategy"] == "no"


@pytest.mark.parametrize(
    ("batch", "micro", "world", "steps"),
    [
        pytest.param(16, 2, 4, 2, id="16=2x4x2"),
        pytest.param(16, 16, 1, 1, id="one-step"),
        pytest.param(16, 3, 1, None, id="micro-3-would-train-15"),
        pytest.param(16, 8, 4, None, id="micro-8-on-4-ranks-would-train-32"),
        pytest.param(12, 2, 4, None, id="6-micro-batches-on-4-ranks"),
    ],
)
def test_a_batch_the_world_cannot_make_exactly_is_refused(
    batch: int, micro: int, world: int, steps: int | None
) -> None:
    run_spec = spec(training={"batchSize": batch, "microBatchSize": micro})
    train_task = task(Stage.TRAIN, run_spec, iteration=1)
    if steps is not None:
        args = train.sft_arguments(train_task, world=world)
        assert args["gradient_accumulation_steps"] == steps
        assert steps * micro * world == batch
        return
    with pytest.raises(BadInput) as caught:
        train.sft_arguments(train_task, world=world)
    message = str(caught.value)
    assert "training.batchSize" in message
    assert "training.microBatchSize" in message
    assert f"world size {world}" in message


def test_train_refuses_a_non_dividing_world_before_reading_or_loading(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nothing is committed in this storage: reaching the data or the model would raise
    UncommittedError or a missing-model error instead of the batch refusal."""
    monkeypatch.setenv("WORLD_SIZE", "3")
    run_spec = spec(training={"batchSize": 8, "microBatchSize": 4})
    with pytest.raises(BadInput, match="world size 3"):
        train.run(task(Stage.TRAIN, run_spec, iteration=1), MemoryStorage(), 0)


# peft 0.21 asks transformers 5 a deprecated question when it wraps the model: not ours to fix.
@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")
def test_lora_training_saves_a_merged_plain_model(tmp_path: Path, run_spec: Any) -> None:
    """LoRA adapters are merged before saving: the next judge loads like any HF model."""
    import torch
    from transformers import AutoModelForCausalLM

    training = run_spec.training.model_copy(
        update={"lora": run_spec.training.lora.model_copy(update={"enabled": True, "rank": 4})}
    )
    lora_spec = run_spec.model_copy(update={"training": training})
    store = FileStorage(tmp_path.as_uri())
    example = {
        "prompt": [{"role": "user", "content": "judge: add 1 2 | A: 9 | B: 3"}],
        "completion": [{"role": "assistant", "content": "[[B]]"}],
    }
    for shard in range(JUDGE_SHARDS):
        with store.output(shard_prefix("ns", "r", 1, Stage.JUDGE, shard)) as out:
            out.write_jsonl("judgments.jsonl", [example] * 8)
    trained = train.run(
        task(Stage.TRAIN, lora_spec, iteration=1, init_model=lora_spec.seed_model), store, 0
    )
    saved = tmp_path / model_prefix("ns", "r", 1)
    assert (saved / "config.json").is_file()
    assert not (saved / "adapter_config.json").exists()  # merged, not an adapter
    assert trained.model == store.uri_for(model_prefix("ns", "r", 1))
    seed = AutoModelForCausalLM.from_pretrained(Path(lora_spec.seed_model.removeprefix("file://")))
    merged = AutoModelForCausalLM.from_pretrained(saved)
    assert set(merged.state_dict()) == set(seed.state_dict())  # no lora_A/lora_B left
    changed = [
        name
        for name, weight in merged.state_dict().items()
        if not torch.equal(weight, seed.state_dict()[name])
    ]
    assert changed, "training with LoRA changed no weight"


def test_dpo_with_lora_trains_on_preferences_and_saves_a_merged_plain_model(
    tmp_path: Path, run_spec: Any
) -> None:
    """DPO takes the same LoRA path as SFT (the reference is the base with adapters off) and
    reports TRL's reward logs; the saved judge is plain."""
    training = run_spec.training.model_copy(
        update={
            "method": "dpo",
            "lora": run_spec.training.lora.model_copy(update={"enabled": True, "rank": 4}),
        }
    )
    dpo_spec = run_spec.model_copy(update={"training": training})
    store = FileStorage(tmp_path.as_uri())
    example = {
        "prompt": [{"role": "user", "content": "judge: add 1 2 | A: 9 | B: 3"}],
        "chosen": [{"role": "assistant", "content": "1 2 = 3 B . [[B]]"}],
        "rejected": [{"role": "assistant", "content": "1 2 = 9 A . [[A]]"}],
    }
    for shard in range(JUDGE_SHARDS):
        with store.output(shard_prefix("ns", "r", 1, Stage.JUDGE, shard)) as out:
            out.write_jsonl("judgments.jsonl", [example] * 8)
    trained = train.run(
        task(Stage.TRAIN, dpo_spec, iteration=1, init_model=dpo_spec.seed_model), store, 0
    )
    assert trained.method == "dpo"
    assert trained.examples == 16
    assert trained.reward_accuracy is not None
    assert 0.0 <= trained.reward_accuracy <= 1.0
    assert trained.reward_margin is not None
    saved = tmp_path / model_prefix("ns", "r", 1)
    assert (saved / "config.json").is_file()
    assert not (saved / "adapter_config.json").exists()
