"""Step 4: fine-tuning of the next judge on the kept judgments (TRL SFT or DPO trainer).

Reads every committed judge shard of this iteration (the merge step), trains from
``task.init_model`` (the seed, or the previous judge) with the loss on the judgment tokens only
(TRL's default for conversational prompt/completion data), and uploads a plain Hugging Face
model: LoRA adapters are merged first, so the next judge loads like any other model.

Runs as one process or as one process per GPU (``selftaught worker train --distributed``,
:mod:`selftaught.launch`): every rank trains on its part of each batch (the global batch stays
``training.batchSize``), only rank 0 uploads. With more than one rank the model is fully
sharded (FSDP2: parameters, gradients and optimizer states split over the ranks) unless
``training.sharding.strategy`` is ``none``; rank 0 gathers the full state dict once to save it.
The spec -> ``SFTConfig`` mapping is the pure :func:`sft_arguments`, so a test can prove the
paper's settings reach TRL unchanged; :func:`dpo_arguments` does the same for ``DPOConfig``.

``training.method: dpo`` trains with TRL's ``DPOTrainer`` on the judge stage's preference rows
(a correct judgment chosen over an incorrect one for the same prompt), with the same sharding,
precision and LoRA handling; the reference is a frozen copy of the model training starts from.
Known gap: under sharding TRL loads that reference on every rank from the checkpoint (no
rank-0-only loading for it), so host memory per pod grows with its ranks.

Output: the model at ``model_prefix(ns, run, i)`` inside the committed train stage prefix.
Summary (:class:`~selftaught.summaries.TrainSummary`): ``loss``, ``examples``, ``steps``,
``ranks`` (training processes), ``sharded`` (FSDP was used), ``rankParameterBytes`` /
``rankOptimizerBytes`` (what rank 0 held at the end of training, measured on its tensors),
``model`` (URI of the trained judge), ``method``, and for DPO ``rewardMargin`` /
``rewardAccuracy`` (TRL's ``rewards/margins`` and ``rewards/accuracies`` at the last step).

Precision: weights load in fp32 and the optimizer steps fp32 master weights; GPUs compute in
bf16 (see :mod:`selftaught.stages.sharding`). At the paper's lr 1e-6 a bf16 weight would not
move: its spacing near 0.02 is ~1.2e-4.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any

from selftaught import progress
from selftaught.artifacts import model_prefix, stage_prefix
from selftaught.phases import Stage
from selftaught.pod import BadInput
from selftaught.prompts import STYLE_FILE
from selftaught.stages import sharding
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
    """``SFTConfig`` keyword arguments: :func:`shared_arguments` plus the loss on the judgment
    tokens only, no packing. Pure."""
    arguments = shared_arguments(task, output_dir=output_dir, gpu=gpu, world=world)
    arguments.update({"completion_only_loss": True, "packing": False})
    return arguments


def dpo_arguments(
    task: StageTask, *, output_dir: str = "dpo-output", gpu: bool = False, world: int = 1
) -> dict[str, Any]:
    """``DPOConfig`` keyword arguments: :func:`shared_arguments` plus ``training.dpo`` (or its
    defaults). Pure. The reference model is not named here: TRL loads a frozen copy of the
    model training starts from (with LoRA: the base with the adapters switched off), which is
    ``training.initFrom``'s model, as the spec documents."""
    dpo = task.spec.training.dpo_settings()
    arguments = shared_arguments(task, output_dir=output_dir, gpu=gpu, world=world)
    arguments.update(
        {
            "beta": dpo.beta,
            "loss_type": [dpo.loss_type],
            "label_smoothing": dpo.label_smoothing,
            # A frozen reference, never synchronised with the policy (TR-DPO is not offered).
            "sync_ref_model": False,
        }
    )
    return arguments


def trainer_arguments(
    task: StageTask, *, output_dir: str, gpu: bool = False, world: int = 1
) -> dict[str, Any]:
    """The config keywords of ``training.method``'s trainer (SFT or DPO)."""
    build = dpo_arguments if task.spec.training.method == "dpo" else sft_arguments
    return build(task, output_dir=output_dir, gpu=gpu, world=world)


def shared_arguments(
    task: StageTask, *, output_dir: str, gpu: bool = False, world: int = 1
) -> dict[str, Any]:
    """Keyword arguments every method's TRL config gets for this task. Pure: no torch, no
    environment.

    Raises :class:`BadInput` when ``world`` processes cannot make exactly ``batchSize``
    (:func:`accumulation_steps`). TRL's defaults are GPU-minded (bf16, gradient checkpointing,
    checkpoints every 500 steps); this sets every one that matters explicitly, for CPU and GPU.
    ``bf16`` is compute only: the weights are loaded in fp32
    (:func:`selftaught.stages.sharding.load_dtype`), so the optimizer steps fp32 master weights.
    With more than one rank the model is sharded (:func:`selftaught.stages.sharding.fsdp_arguments`)
    unless the spec says ``none``.
    """
    spec = task.spec.training
    micro = spec.micro_batch_size
    accumulation = accumulation_steps(task, world)
    arguments: dict[str, Any] = {
        "output_dir": output_dir,
        "learning_rate": spec.learning_rate,
        "lr_scheduler_type": spec.lr_scheduler,
        "warmup_steps": spec.warmup_steps,
        "num_train_epochs": spec.epochs,
        "per_device_train_batch_size": micro,
        "gradient_accumulation_steps": accumulation,
        "max_length": spec.max_length,
        "bf16": gpu,
        "use_cpu": not gpu,
        "activation_checkpointing": gpu and spec.sharding.activation_checkpointing,
        "save_strategy": "no",
        "report_to": "none",
        # Every step: the loss curve is what a sharded run is compared with (one float a step).
        "logging_steps": 1,
        "disable_tqdm": True,
        "dataloader_pin_memory": gpu,
        # Full or LoRA, every trainable parameter gets a gradient: skip DDP's extra graph walk.
        "ddp_find_unused_parameters": False,
        "seed": task.spec.worker.seed + task.iteration,
        "data_seed": task.spec.worker.seed + task.iteration,
    }
    if sharding.is_sharded(task, world):
        arguments.update(sharding.fsdp_arguments(task, gpu=gpu))
    return arguments


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


#: The columns each method's trainer reads from the judge stage's rows (TRL's conversational
#: prompt/completion and preference forms).
COLUMNS = {"sft": ("prompt", "completion"), "dpo": ("prompt", "chosen", "rejected")}


def examples(task: StageTask, storage: Storage) -> list[dict[str, Any]]:
    """This iteration's training rows with the columns ``training.method`` trains on.

    Raises :class:`BadInput` when a row lacks one (judgments written for the other method, e.g.
    a method changed while an iteration's judge output already existed)."""
    rows = list(
        read_shards(
            storage, task, iteration=task.iteration, stage=Stage.JUDGE, name="judgments.jsonl"
        )
    )
    method = task.spec.training.method
    columns = COLUMNS[method]
    for number, row in enumerate(rows, start=1):
        missing = [c for c in columns if c not in row]
        if missing:
            raise BadInput(
                f"judgments.jsonl row {number} of iteration {task.iteration} lacks {missing}: "
                f"training.method {method} needs {list(columns)} (judged for another method?)"
            )
    return [{c: r[c] for c in columns} for r in rows]


def dpo_metrics(log_history: list[dict[str, Any]]) -> tuple[float | None, float | None]:
    """TRL's ``rewards/margins`` and ``rewards/accuracies`` at the last step that logged them
    (every step: ``logging_steps`` is 1); None when none did (SFT)."""
    for entry in reversed(log_history):
        if "rewards/margins" in entry:
            accuracy = entry.get("rewards/accuracies")
            return float(entry["rewards/margins"]), None if accuracy is None else float(accuracy)
    return None, None


def progress_callback() -> Any:
    """Optimizer steps as the stage's progress items (the bar shows steps done / total)."""
    from transformers import TrainerCallback

    class StepProgress(TrainerCallback):  # type: ignore[misc]
        def on_train_begin(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            progress.current().expect(int(state.max_steps))

        def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
            progress.current().advance(1)

    return StepProgress()


def build_trainer(
    task: StageTask,
    rows: list[dict[str, Any]],
    init: Path,
    *,
    work: Path,
    gpu: bool,
    world: int,
    bf16: bool | None = None,
) -> Any:
    """The ``SFTTrainer`` (or ``DPOTrainer`` for ``training.method: dpo``) for this task, its
    model loaded with fp32 master weights (sharded over the ranks when
    :func:`sharding.is_sharded`). Shared by the stage and the GPU check. The DPO reference is
    TRL's own frozen copy of ``init`` (LoRA: the base with adapters disabled).

    ``bf16`` overrides the compute precision (default: bf16 on GPUs only), so the precision
    rule can be checked on a CPU with bf16 compute.
    """
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOTrainer, SFTTrainer  # type: ignore[attr-defined]

    sharded = sharding.is_sharded(task, world)
    sharding.prepare_environment(sharded)
    # The config first: it starts the process group that rank-0-only loading needs.
    arguments = trainer_arguments(task, output_dir=str(work / "trainer"), gpu=gpu, world=world)
    if bf16 is not None:
        arguments["bf16"] = bf16
    method = task.spec.training.method
    config = sharding.config_class(sharded, method=method)(**arguments)
    _ = config.device
    tokenizer = AutoTokenizer.from_pretrained(init)
    dtype = sharding.load_dtype(gpu=gpu, lora=task.spec.training.lora.enabled)
    if sharding.reads_checkpoint(sharded):
        model = AutoModelForCausalLM.from_pretrained(init, dtype=dtype)
    else:
        model = sharding.empty_model(init, dtype)
    trainer_class = DPOTrainer if method == "dpo" else SFTTrainer
    # TRL's DPO + peft path (wrapping, and the reference pass with adapters off, every step)
    # reads transformers 5's deprecated ``is_gradient_checkpointing``: harmless, not ours to
    # fix, and an error under the tests' warning policy. Silenced for this process only.
    warnings.filterwarnings(
        "ignore", "`is_gradient_checkpointing` is deprecated", category=FutureWarning
    )
    trainer = trainer_class(
        model=model,
        args=config,
        train_dataset=Dataset.from_list(rows),
        processing_class=tokenizer,
        peft_config=lora_config(task),
        callbacks=[progress_callback()],
    )
    sharding.enable_fsdp_on_cpu(trainer)
    sharding.reduce_in_fp32(trainer)
    return trainer


def save_dtype(init: Path) -> Any:
    """The dtype the trained judge is saved in: the one its checkpoint came in (bf16 for most
    released models), so fp32 master weights do not double the next judge's size."""
    import torch
    from transformers import AutoConfig

    dtype = getattr(AutoConfig.from_pretrained(init), "dtype", None)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype, None)
    return dtype if isinstance(dtype, torch.dtype) else torch.float32


def trained_model(trainer: Any, task: StageTask, init: Path) -> Any:
    """The trained model as a plain transformers model on rank 0 (None on other ranks).

    Every rank must call this: a sharded model's full state dict is gathered collectively
    (once, to rank 0's CPU memory). LoRA adapters are merged, so the next judge is plain.
    """
    dtype = save_dtype(init)
    main = trainer.accelerator.is_main_process and is_rank_zero()
    if not trainer.is_fsdp_enabled:
        if not main:
            return None
        model: Any = trainer.accelerator.unwrap_model(trainer.model)
        if hasattr(model, "merge_and_unload"):
            model = model.merge_and_unload()
        return model.to(dtype)
    sharding.enable_fsdp_on_cpu(trainer)
    state = trainer.accelerator.get_state_dict(trainer.model)
    if not main:
        return None
    return sharding.assemble(state, init, lora=lora_config(task), dtype=dtype)


def run(task: StageTask, storage: Storage, shard: int) -> TrainSummary:
    accumulation_steps(task, world_size())  # a batch this world cannot make: refuse first
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    rows = examples(task, storage)
    if not rows:
        raise BadInput(
            "the judge kept no correct judgment in this iteration: nothing to train on (the "
            "current judge never agrees with the known winners; check the seed model and prompts)"
            if task.spec.training.method == "sft"
            else "the judge kept no preference pair in this iteration: no judging prompt got "
            "both a correct and an incorrect judgment (the judge stage's summary counts pairs "
            "without a rejected side as droppedWithoutRejected; more samplesPerPair or a higher "
            "temperature give DPO more pairs)"
        )
    init = model_path(task, task.init_model or task.spec.seed_model)
    gpu = torch.cuda.is_available()
    sharded = sharding.is_sharded(task, world_size())
    memory: dict[str, Any] = {"readCheckpoint": sharding.reads_checkpoint(sharded)}
    with tempfile.TemporaryDirectory(prefix="selftaught-train-") as work:
        trainer = build_trainer(task, rows, init, work=Path(work), gpu=gpu, world=world_size())
        trainer.add_callback(sharding.memory_callback(memory))
        with progress.compute():
            result = trainer.train()
        steps = trainer.state.global_step
        prefix = stage_prefix(task.namespace, task.run, task.iteration, Stage.TRAIN)
        uri = storage.uri_for(model_prefix(task.namespace, task.run, task.iteration))
        trained = trained_model(trainer, task, init)
        if trained is not None:
            out_dir = Path(work) / "model"
            trained.save_pretrained(out_dir)
            trainer.processing_class.save_pretrained(out_dir)
            if (init / STYLE_FILE).is_file():
                shutil.copy(init / STYLE_FILE, out_dir / STYLE_FILE)
            with storage.output(prefix) as out:
                out.upload_dir(
                    out_dir,
                    model_prefix(task.namespace, task.run, task.iteration)[len(prefix) + 1 :],
                )
    margin, accuracy = dpo_metrics(trainer.state.log_history)
    return TrainSummary(
        method=task.spec.training.method,
        reward_margin=margin,
        reward_accuracy=accuracy,
        loss=float(result.training_loss),
        examples=len(rows),
        steps=int(steps),
        ranks=world_size(),
        sharded=bool(trainer.is_fsdp_enabled),
        rank_parameter_bytes=memory.get("parameterBytes", 0),
        rank_optimizer_bytes=memory.get("optimizerBytes", 0),
        model=uri,
    )
