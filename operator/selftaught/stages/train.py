"""Step 4: supervised fine-tuning of the next judge on the kept judgments (TRL ``SFTTrainer``).

Reads every committed judge shard of this iteration (the merge step), trains from
``task.init_model`` (the seed, or the previous judge) with the loss on the judgment tokens only
(TRL's default for conversational prompt/completion data), and uploads a plain Hugging Face
model: LoRA adapters are merged first, so the next judge loads like any other model.

Runs as one process or as one process per GPU (``selftaught worker train --distributed``,
:mod:`selftaught.launch`): every rank trains on its part of each batch (the global batch stays
``training.batchSize``), only rank 0 uploads.
The spec -> ``SFTConfig`` mapping is the pure :func:`sft_arguments`, so a test can prove the
paper's settings reach TRL unchanged.

Output: the model at ``model_prefix(ns, run, i)`` inside the committed train stage prefix.
Summary (:class:`~selftaught.summaries.TrainSummary`): ``loss``, ``examples``, ``steps``,
``ranks`` (training processes), ``model`` (URI of the trained judge).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from selftaught import progress
from selftaught.artifacts import model_prefix, stage_prefix
from selftaught.phases import Stage
from selftaught.pod import BadInput
from selftaught.prompts import STYLE_FILE
from selftaught.stages.common import model_path, read_shards
from selftaught.storage import Storage
from selftaught.summaries import TrainSummary
from selftaught.task import StageTask


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def accumulation_steps(task: StageTask, world: int) -> int:
    """Gradient accumulation steps that make exactly ``training.batchSize`` per optimizer step.

    The global batch is ``microBatchSize x world x steps``. When that cannot equal
    ``batchSize`` the stage refuses (:class:`BadInput`) instead of rounding: rounding down
    trained batch 16 with micro 3 as 15, rounding up trained micro 8 on 4 ranks as 32, and
    neither showed anywhere. Admission refuses the spec part (a CEL rule on ``training``); the
    world size is known only here.
    """
    spec = task.spec.training
    batch, micro, world = spec.batch_size, spec.micro_batch_size, max(1, world)
    if batch % (micro * world):
        raise BadInput(
            f"training.batchSize {batch} is not a multiple of training.microBatchSize {micro} x "
            f"world size {world} (training processes: gpus x nodes of the train stage); choose a "
            "batchSize divisible by microBatchSize x world size"
        )
    return batch // (micro * world)


def sft_arguments(
    task: StageTask, *, output_dir: str = "sft-output", gpu: bool = False, world: int = 1
) -> dict[str, Any]:
    """``SFTConfig`` keyword arguments for this task. Pure: no torch, no environment.

    Raises :class:`BadInput` when ``world`` processes cannot make exactly ``batchSize``
    (:func:`accumulation_steps`). TRL's defaults are GPU-minded (bf16, gradient checkpointing,
    checkpoints every 500 steps); this sets every one that matters explicitly, for CPU and GPU.
    """
    spec = task.spec.training
    micro = spec.micro_batch_size
    accumulation = accumulation_steps(task, world)
    return {
        "output_dir": output_dir,
        "learning_rate": spec.learning_rate,
        "lr_scheduler_type": spec.lr_scheduler,
        "warmup_steps": spec.warmup_steps,
        "num_train_epochs": spec.epochs,
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": accumulation,
        "max_length": spec.max_length,
        "completion_only_loss": True,
        "packing": False,
        "bf16": gpu,
        "use_cpu": not gpu,
        "activation_checkpointing": gpu,
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": 10,
        "disable_tqdm": True,
        "dataloader_pin_memory": gpu,
        # Full or LoRA, every trainable parameter gets a gradient: skip DDP's extra graph walk.
        "ddp_find_unused_parameters": False,
        "seed": task.spec.worker.seed + task.iteration,
        "data_seed": task.spec.worker.seed + task.iteration,
    }


def lora_config(task: StageTask) -> Any:
    """A peft ``LoraConfig`` when the spec enables LoRA, else None."""
    lora = task.spec.training.lora
    if not lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora.rank,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )


def examples(task: StageTask, storage: Storage) -> list[dict[str, Any]]:
    rows = read_shards(
        storage, task, iteration=task.iteration, stage=Stage.JUDGE, name="judgments.jsonl"
    )
    return [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]


def progress_callback() -> Any:
    """Optimizer steps as the stage's progress items (the bar shows steps done / total)."""
    from transformers import TrainerCallback

    class StepProgress(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            progress.current().expect(int(state.max_steps))

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            progress.current().advance(1)

    return StepProgress()


def run(task: StageTask, storage: Storage, shard: int) -> TrainSummary:
    accumulation_steps(task, world_size())  # a batch this world cannot make: refuse first
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging
    from trl import SFTConfig, SFTTrainer  # type: ignore[attr-defined]

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    rows = examples(task, storage)
    if not rows:
        raise BadInput(
            "the judge kept no correct judgment in this iteration: nothing to train on (the "
            "current judge never agrees with the known winners; check the seed model and prompts)"
        )
    init = model_path(task, task.init_model or task.spec.seed_model)
    gpu = torch.cuda.is_available()
    with tempfile.TemporaryDirectory(prefix="selftaught-train-") as work:
        arguments = sft_arguments(
            task, output_dir=str(Path(work) / "trainer"), gpu=gpu, world=world_size()
        )
        tokenizer = AutoTokenizer.from_pretrained(init)
        model = AutoModelForCausalLM.from_pretrained(
            init, dtype=torch.bfloat16 if gpu else torch.float32
        )
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**arguments),
            train_dataset=Dataset.from_list(rows),
            processing_class=tokenizer,
            peft_config=lora_config(task),
            callbacks=[progress_callback()],
        )
        with progress.compute():
            result = trainer.train()
        steps = trainer.state.global_step
        prefix = stage_prefix(task.namespace, task.run, task.iteration, Stage.TRAIN)
        uri = storage.uri_for(model_prefix(task.namespace, task.run, task.iteration))
        if trainer.accelerator.is_main_process and is_rank_zero():
            out_dir = Path(work) / "model"
            trained: Any = trainer.model
            if hasattr(trained, "merge_and_unload"):
                trained = trained.merge_and_unload()
            trained.save_pretrained(out_dir)
            tokenizer.save_pretrained(out_dir)
            if (init / STYLE_FILE).is_file():
                shutil.copy(init / STYLE_FILE, out_dir / STYLE_FILE)
            with storage.output(prefix) as out:
                out.upload_dir(
                    out_dir,
                    model_prefix(task.namespace, task.run, task.iteration)[len(prefix) + 1 :],
                )
    return TrainSummary(
        loss=float(result.training_loss),
        examples=len(rows),
        steps=int(steps),
        ranks=world_size(),
        model=uri,
    )
