"""The train stage's precision and sharding rules: fp32 master weights under bf16 compute, and
which runs are sharded with which FSDP settings.

The precision test runs one optimizer step at the paper's lr 1e-6 on CPU with bf16 compute,
through :func:`train.build_trainer` (the code that loads the model and builds the trainer), and
through the old path (the model loaded in bf16, as the stage did on GPUs before): fp32 master
weights move, bf16 weights round the step away.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from selftaught.phases import Stage
from selftaught.stages import sharding, train
from tests.unit.stage_env import small_model, spec, task

ROWS = [
    {
        "prompt": [{"role": "user", "content": f"judge: add {i} 2 | A: {i + 2} | B: 7"}],
        "completion": [{"role": "assistant", "content": "[[A]]"}],
    }
    for i in range(4)
]


def paper_step_task() -> Any:
    """One step at lr 1e-6, no warm-up, constant schedule: the first AdamW step moves every
    weight with a gradient by ~1e-6 (Adam normalises the gradient)."""
    training = {
        "learningRate": 1e-6,
        "lrScheduler": "constant",
        "warmupSteps": 0,
        "epochs": 1,
        "batchSize": len(ROWS),
        "microBatchSize": len(ROWS),
        "maxLength": 96,
    }
    return task(Stage.TRAIN, spec(training=training), iteration=1)


def fraction_changed(trainer: Any) -> float:
    """Train one step; the fraction of decoder-layer weights that changed. (Embedding rows of
    tokens absent from the batch get no gradient in any precision, so they are left out.)"""

    def layers() -> dict[str, Any]:
        return {
            name: parameter.detach().float().clone()
            for name, parameter in trainer.model.named_parameters()
            if ".layers." in name
        }

    before = layers()
    trainer.train()
    assert trainer.state.global_step == 1
    after = layers()
    changed = sum(int((after[n] != before[n]).sum()) for n in before)
    total = sum(t.numel() for t in before.values())
    assert total > 0
    return changed / total


def test_an_lr_1e6_step_moves_fp32_master_weights_under_bf16_compute(tmp_path: Path) -> None:
    import torch

    trainer = train.build_trainer(
        paper_step_task(), ROWS, small_model(), work=tmp_path, gpu=False, world=1, bf16=True
    )
    assert trainer.args.bf16  # bf16 compute (CPU autocast)
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}  # fp32 master
    assert fraction_changed(trainer) >= 0.90


def test_the_old_bf16_weights_path_rounds_an_lr_1e6_step_away(tmp_path: Path) -> None:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]

    step = paper_step_task()
    arguments = train.sft_arguments(step, output_dir=str(tmp_path / "old"), gpu=False)
    model = AutoModelForCausalLM.from_pretrained(small_model(), dtype=torch.bfloat16)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**{**arguments, "bf16": True}),
        train_dataset=Dataset.from_list(ROWS),
        processing_class=AutoTokenizer.from_pretrained(small_model()),
    )
    assert fraction_changed(trainer) < 0.10


@pytest.mark.parametrize(
    ("strategy", "world", "sharded"),
    [
        ("auto", 1, False),
        ("auto", 2, True),
        ("auto", 16, True),
        ("full", 1, True),  # one GPU: FSDP's offload and checkpointing, a 1-rank group
        ("full", 8, True),
        ("none", 8, False),
    ],
    ids=lambda value: str(value),
)
def test_which_runs_are_sharded(strategy: str, world: int, sharded: bool) -> None:
    run_spec = spec(training={"sharding": {"strategy": strategy}})
    train_task = task(Stage.TRAIN, run_spec, iteration=1)
    assert sharding.is_sharded(train_task, world) is sharded
    arguments = train.sft_arguments(train_task, gpu=True, world=world)
    assert arguments.get("fsdp", False) is sharded


def test_sharded_arguments_shard_everything_checkpoint_and_load_on_rank_zero() -> None:
    run_spec = spec(training={"sharding": {"offloadOptimizer": True}})
    arguments = train.sft_arguments(task(Stage.TRAIN, run_spec, iteration=1), gpu=True, world=16)
    config = arguments["fsdp_config"]
    assert config["version"] == 2  # FSDP2: fully_shard
    assert config["reshard_after_forward"] is True  # params, grads and states all sharded
    assert config["activation_checkpointing"] is True  # on by default
    assert arguments["activation_checkpointing"] is False  # FSDP's own, not the Trainer's too
    assert config["cpu_ram_efficient_loading"] is True  # rank 0 reads, the others receive
    assert config["state_dict_type"] == "FULL_STATE_DICT"  # a plain HF model on rank 0
    assert config["cpu_offload"] is True
    assert arguments["bf16"]  # compute; the weights stay fp32
    on_cpu = train.sft_arguments(task(Stage.TRAIN, run_spec, iteration=1), gpu=False, world=2)
    assert on_cpu["fsdp_config"]["cpu_offload"] is False  # the weights are in host memory already


@pytest.mark.parametrize(
    ("gpu", "lora", "expected"),
    [(True, False, "float32"), (False, False, "float32"), (True, True, "bfloat16")],
    ids=["gpu-full", "cpu-full", "gpu-lora-frozen-base"],
)
def test_load_dtype_keeps_fp32_master_weights_for_what_trains(
    gpu: bool, lora: bool, expected: str
) -> None:
    assert str(sharding.load_dtype(gpu=gpu, lora=lora)) == f"torch.{expected}"
