"""training.method dpo: admission rules, the spec -> DPOConfig mapping, TRL's reward logs read
back, and the method shown per iteration."""

from __future__ import annotations

from typing import Any

import pytest
from rich.console import Console

from selftaught.api import IterationRecord, RunStatus
from selftaught.artifacts import shard_prefix
from selftaught.local.display import iterations_table
from selftaught.phases import Stage
from selftaught.pod import BadInput
from selftaught.stages import train
from selftaught.storage import MemoryStorage
from selftaught.validation import check_manifest
from tests.unit.stage_env import spec, task
from tests.unit.test_crd import with_spec

TRAINING = "spec.training"

#: (id, training block, field refused, words of the message)
REFUSED: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "dpo-block-with-sft",
        {"dpo": {"beta": 0.2}},
        f"{TRAINING}.dpo",
        "only with training.method dpo",
    ),
    (
        "label-smoothing-with-sigmoid",
        {"method": "dpo", "dpo": {"labelSmoothing": 0.1}},
        f"{TRAINING}.dpo.labelSmoothing",
        "robust or exo_pair",
    ),
    (
        "unknown-loss",
        {"method": "dpo", "dpo": {"lossType": "kto"}},
        f"{TRAINING}.dpo.lossType",
        "kto",
    ),
    ("beta-zero", {"method": "dpo", "dpo": {"beta": 0}}, f"{TRAINING}.dpo.beta", "greater than"),
    ("unknown-method", {"method": "ppo"}, f"{TRAINING}.method", "ppo"),
]


@pytest.mark.parametrize(
    ("training", "field", "words"), [pytest.param(t, f, w, id=i) for i, t, f, w in REFUSED]
)
def test_bad_dpo_settings_are_refused_at_admission(
    training: dict[str, Any], field: str, words: str
) -> None:
    errors = check_manifest(with_spec(training=training))
    mine = [e for e in errors if e.path == field]
    assert mine, [str(e) for e in errors]
    assert any(words in e.message for e in mine), [str(e) for e in mine]


@pytest.mark.parametrize(
    "training",
    [
        pytest.param({"method": "dpo"}, id="dpo-defaults"),
        pytest.param(
            {"method": "dpo", "dpo": {"lossType": "robust", "labelSmoothing": 0.1}}, id="robust"
        ),
        pytest.param({"method": "sft"}, id="sft"),
    ],
)
def test_good_dpo_settings_are_admitted(training: dict[str, Any]) -> None:
    assert [str(e) for e in check_manifest(with_spec(training=training))] == []


def test_dpo_arguments_carry_every_spec_field_into_dpo_config_unchanged() -> None:
    """The shared settings as SFT gets them, plus every training.dpo field, reach a real
    ``DPOConfig`` unchanged (TRL normalises nothing away)."""
    from trl import DPOConfig

    run_spec = spec(
        training={
            "method": "dpo",
            "dpo": {"beta": 0.25, "lossType": "exo_pair", "labelSmoothing": 0.001},
            "learningRate": 5e-7,
            "lrScheduler": "linear",
            "warmupSteps": 7,
            "epochs": 2,
            "batchSize": 8,
            "microBatchSize": 2,
            "maxLength": 512,
        }
    )
    train_task = task(Stage.TRAIN, run_spec, iteration=1)
    args = train.dpo_arguments(train_task, world=2)
    shared = train.shared_arguments(train_task, output_dir="dpo-output", world=2)
    assert {k: args[k] for k in shared} == shared  # the same settings SFT gets
    assert "completion_only_loss" not in args  # an SFT-only field
    config = DPOConfig(**args)
    expected = {
        "beta": 0.25,
        "loss_type": ["exo_pair"],
        "label_smoothing": 0.001,
        "sync_ref_model": False,
        "learning_rate": 5e-7,
        "lr_scheduler_type": "linear",
        "warmup_steps": 7,
        "num_train_epochs": 2.0,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 2,  # 8 = 2 per device x 2 ranks x 2
        "max_length": 512,
        "bf16": False,
        "use_cpu": True,
        "save_strategy": "no",
        "seed": run_spec.worker.seed + 1,
    }
    got = {k: getattr(config, k) for k in expected}
    got["lr_scheduler_type"] = str(
        getattr(config.lr_scheduler_type, "value", config.lr_scheduler_type)
    )
    got["save_strategy"] = str(getattr(config.save_strategy, "value", config.save_strategy))
    assert got == expected


def test_dpo_without_a_block_uses_trl_defaults_and_sft_is_unchanged() -> None:
    dpo_task = task(Stage.TRAIN, spec(training={"method": "dpo"}), iteration=1)
    args = train.trainer_arguments(dpo_task, output_dir="o")
    assert (args["beta"], args["loss_type"], args["label_smoothing"]) == (0.1, ["sigmoid"], 0.0)
    sft_task = task(Stage.TRAIN, spec(), iteration=1)
    assert train.trainer_arguments(sft_task, output_dir="o") == train.sft_arguments(
        sft_task, output_dir="o"
    )


@pytest.mark.parametrize(
    ("history", "expected"),
    [
        pytest.param(
            [
                {"loss": 0.7},
                {"rewards/margins": 0.2, "rewards/accuracies": 0.5, "loss": 0.6},
                {"rewards/margins": 0.9, "rewards/accuracies": 0.75},
                {"train_loss": 0.65},
            ],
            (0.9, 0.75),
            id="last-logged-step",
        ),
        pytest.param([{"loss": 0.7}, {"train_loss": 0.7}], (None, None), id="sft-logs-none"),
    ],
)
def test_dpo_metrics_read_trls_last_logged_rewards(
    history: list[dict[str, Any]], expected: tuple[float | None, float | None]
) -> None:
    assert train.dpo_metrics(history) == expected


def test_the_iterations_table_shows_each_iterations_method() -> None:
    status = RunStatus(
        history=[
            IterationRecord(iteration=0),
            IterationRecord(iteration=1, method="sft", training_loss=0.1),
            IterationRecord(iteration=2, method="dpo", reward_accuracy=0.8125),
        ]
    )
    console = Console(record=True, width=200, color_system=None)
    console.print(iterations_table(status))
    cells = [
        [cell.strip() for cell in line.split("│")[1:-1]]
        for line in console.export_text().splitlines()
        if line.startswith("│")
    ]
    assert [row[:2] for row in cells] == [["0", "-"], ["1", "sft"], ["2", "dpo acc 0.81"]]
    sft_only = RunStatus(history=status.history[:2])
    assert "method" not in rendered_text(sft_only)  # shown only when a run trained with DPO


def rendered_text(status: RunStatus) -> str:
    console = Console(record=True, width=200, color_system=None)
    console.print(iterations_table(status))
    return console.export_text()


def judged(storage: MemoryStorage, rows: list[dict[str, Any]]) -> None:
    with storage.output(shard_prefix("ns", "r", 1, Stage.JUDGE, 0)) as out:
        out.write_jsonl("judgments.jsonl", rows)


PREFERENCE_ROW = {
    "prompt": [{"role": "user", "content": "judge: max 1 2 | A: 2 | B: 1"}],
    "chosen": [{"role": "assistant", "content": "[[A]]"}],
    "rejected": [{"role": "assistant", "content": "[[B]]"}],
    "rejectedReason": "wrong",
    "pairId": 3,
    "winner": "A",
}


def test_train_reads_dpo_rows_in_trls_preference_columns() -> None:
    storage = MemoryStorage("dpo")
    judged(storage, [PREFERENCE_ROW] * 2)
    dpo_task = task(Stage.TRAIN, spec(training={"method": "dpo"}), iteration=1)
    assert (
        train.examples(dpo_task, storage)
        == [{k: PREFERENCE_ROW[k] for k in ("prompt", "chosen", "rejected")}] * 2
    )


def test_train_refuses_rows_judged_for_the_other_method_naming_row_and_columns() -> None:
    storage = MemoryStorage("dpo")
    sft_row = {"prompt": PREFERENCE_ROW["prompt"], "completion": PREFERENCE_ROW["chosen"]}
    judged(storage, [sft_row])
    dpo_task = task(Stage.TRAIN, spec(training={"method": "dpo"}), iteration=1)
    with pytest.raises(BadInput, match=r"row 1 of iteration 1 lacks \['chosen', 'rejected'\]"):
        train.examples(dpo_task, storage)
