"""Sharded training for the train stage: FSDP2 through accelerate and TRL's own support.

What this module decides and why:

* **When to shard** (:func:`is_sharded`): ``training.sharding.strategy`` -- ``auto`` shards as
  soon as the stage has more than one rank, ``full`` always (with one GPU that still buys FSDP's
  CPU offload and layer-wise activation checkpointing; the process then forms a one-rank
  process group itself, :func:`prepare_environment`), ``none`` keeps one replica per rank (DDP).
* **What TRL gets** (:func:`fsdp_arguments`): ``fsdp=True`` with an FSDP2 ``fsdp_config`` --
  parameters, gradients and optimizer states sharded over all ranks (``reshard_after_forward``),
  FSDP's own activation checkpointing per decoder layer, rank-0-only loading
  (``cpu_ram_efficient_loading``; only rank 0 reads the checkpoint, the others build the model
  empty, :func:`empty_model`, and receive their shards by broadcast, so host memory does not
  grow with the ranks of a pod), a full state dict for saving (gathered once to rank 0 and
  assembled there, :func:`assemble`), and CPU offload when the spec asks for it.
* **fp32 master weights** (:func:`load_dtype`): weights are loaded in fp32 and the trainer
  computes in bf16 on GPUs (FSDP ``MixedPrecisionPolicy`` or autocast), so a 1e-6 step is not
  rounded away. Gradients are reduced in fp32 (:func:`reduce_in_fp32`).
* **CPU** (:func:`enable_fsdp_on_cpu`): accelerate 1.16 applies its FSDP plugin only to GPU-like
  devices and silently falls back to DDP on ``MULTI_CPU``; ``fully_shard`` itself works on CPU
  with gloo. The tests (and anyone debugging without a GPU) get the same FSDP2 path by
  switching the accelerator state to FSDP before ``train()`` prepares the model. On GPUs this
  is a no-op: accelerate takes the plugin itself.

Nothing here imports torch at module level: the train stage imports it inside ``run``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any

from selftaught.task import StageTask


def is_sharded(task: StageTask, world: int) -> bool:
    """Whether this train stage shards the model over its ``world`` ranks (FSDP)."""
    strategy = task.spec.training.sharding.strategy
    return strategy == "full" or (strategy == "auto" and world > 1)


def fsdp_arguments(task: StageTask, *, gpu: bool) -> dict[str, Any]:
    """The ``SFTConfig`` keywords that turn on FSDP2 with this spec's settings. Pure.

    CPU offload applies on GPUs only: on a CPU the weights already live in host memory (and
    FSDP2's offload policy needs an accelerator device).
    """
    sharding = task.spec.training.sharding
    return {
        "fsdp": True,
        "fsdp_config": {
            "version": 2,
            "reshard_after_forward": True,
            "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
            "activation_checkpointing": sharding.activation_checkpointing,
            "cpu_ram_efficient_loading": True,
            "state_dict_type": "FULL_STATE_DICT",
            "cpu_offload": sharding.offload_optimizer and gpu,
        },
        # FSDP checkpoints its own layers; the Trainer's flag would all-gather twice.
        "activation_checkpointing": False,
    }


def prepare_environment(sharded: bool) -> None:
    """Before the model is loaded: tell transformers' ``from_pretrained`` that FSDP will place
    the weights, so ranks other than 0 skip reading the checkpoint (rank-0-only loading).

    A single process not started by the launcher (one GPU, ``strategy: full``) gets the
    environment of a one-rank process group on loopback, which FSDP needs to exist.
    """
    if not sharded:
        return
    os.environ["ACCELERATE_USE_FSDP"] = "true"
    os.environ["FSDP_CPU_RAM_EFFICIENT_LOADING"] = "true"
    if "WORLD_SIZE" not in os.environ:
        os.environ.update(
            {
                "WORLD_SIZE": "1",
                "RANK": "0",
                "LOCAL_RANK": "0",
                "LOCAL_WORLD_SIZE": "1",
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(_free_port()),
            }
        )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def config_class(sharded: bool, *, method: str = "sft") -> Any:
    """TRL's ``SFTConfig`` (``DPOConfig`` for method dpo), or for a sharded run a subclass that
    tells the Trainer not to move the model to the device itself: FSDP places it (accelerate
    says so on GPUs; on a CPU the
    Trainer would ``.to()`` the empty model of a rank other than 0). ``place_model_on_device``
    is the property transformers documents for integrations to override."""
    from trl import DPOConfig, SFTConfig  # type: ignore[attr-defined]

    base = DPOConfig if method == "dpo" else SFTConfig
    if not sharded:
        return base

    class ShardedConfig(base):  # type: ignore[misc,valid-type]
        @property
        def place_model_on_device(self) -> bool:
            return False

    return ShardedConfig


def reads_checkpoint(sharded: bool) -> bool:
    """Whether this rank reads the weights from disk: every rank without sharding, only global
    rank 0 with it (the others get their shards by broadcast when FSDP wraps the model)."""
    return not sharded or int(os.environ.get("RANK", "0")) == 0


def empty_model(init: Any, dtype: Any) -> Any:
    """The model's modules with parameters on the meta device (no memory, nothing read) and
    real buffers (rotary frequencies are computed, not loaded): what a rank other than 0 needs
    before FSDP broadcasts its shards."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(init)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)  # type: ignore[no-untyped-call]
    # init_empty_weights re-creates every registered parameter, which unties tied embeddings:
    # tie them again, or this rank's parameters would not map onto rank 0's.
    model.tie_weights()
    return model


def assemble(state: dict[str, Any], init: Any, *, lora: Any, dtype: Any) -> Any:
    """A plain model from a gathered full state dict, on rank 0, without reading the checkpoint
    again: the gathered tensors are assigned to an empty model (LoRA: merged), then cast to the
    checkpoint's ``dtype``. Raises when the state dict leaves a parameter unset."""
    import torch

    model = empty_model(init, torch.float32)
    if lora is not None:
        from peft import get_peft_model

        model = get_peft_model(model, lora)
    model.load_state_dict(state, strict=False, assign=True)
    base = model.get_base_model() if lora is not None else model
    base.tie_weights()
    unset = [name for name, p in model.named_parameters() if p.device.type == "meta"]
    if unset:
        raise RuntimeError(f"the gathered state dict lacks {len(unset)} parameters: {unset[:5]}")
    if lora is not None:
        model = model.merge_and_unload()
    return model.to(dtype)


def load_dtype(*, gpu: bool, lora: bool) -> Any:
    """The dtype the model is loaded in: fp32 master weights for everything that trains.

    Only a LoRA run on a GPU loads its frozen base in bf16 (it never steps; peft keeps the
    adapters in fp32), which halves the base's memory.
    """
    import torch

    return torch.bfloat16 if gpu and lora else torch.float32


def enable_fsdp_on_cpu(trainer: Any) -> None:
    """Make a CPU trainer use the FSDP plugin it was configured with (see the module doc).

    Does nothing on GPUs, where the accelerator took the plugin itself, or when FSDP was not
    asked for. Idempotent, and called again before the state dict is gathered: every later
    ``AcceleratorState()`` copies the process-level state (``MULTI_CPU``) over the
    accelerator's, so the switch must be re-asserted before accelerate next asks "FSDP2?".
    """
    import torch.distributed as dist
    from accelerate.utils import DistributedType, FullyShardedDataParallelPlugin

    if trainer.args.fsdp_plugin_args is None or trainer.accelerator.is_fsdp2:
        return
    if not dist.is_initialized():  # FSDP needs a process group; without one, plain training
        return
    state = trainer.accelerator.state
    if getattr(state, "fsdp_plugin", None) is None:
        plugin = FullyShardedDataParallelPlugin(**trainer.args.fsdp_plugin_args)
        if state.mixed_precision != "no":  # as accelerate does for the devices it supports
            plugin.set_mixed_precision(state.mixed_precision)
        state.fsdp_plugin = plugin
    state.distributed_type = DistributedType.FSDP
    trainer.is_fsdp_enabled = True


def reduce_in_fp32(trainer: Any) -> None:
    """Reduce gradients in fp32 under bf16 compute (accelerate's default reduces in bf16)."""
    import torch
    from torch.distributed.fsdp import MixedPrecisionPolicy

    plugin = getattr(trainer.accelerator.state, "fsdp_plugin", None)
    if plugin is None or getattr(plugin, "mixed_precision_policy", None) is None:
        return
    plugin.mixed_precision_policy = MixedPrecisionPolicy(
        param_dtype=plugin.mixed_precision_policy.param_dtype, reduce_dtype=torch.float32
    )


def _local_bytes(tensor: Any) -> int:
    local = tensor.to_local() if hasattr(tensor, "to_local") else tensor
    return int(local.numel() * local.element_size())


def rank_memory(model: Any, optimizer: Any) -> dict[str, int]:
    """Bytes of parameters and optimizer state this rank holds, measured on its own tensors
    (a sharded parameter is a DTensor: its local shard is what occupies memory here)."""
    import torch

    seen: set[int] = set()
    parameters = 0
    for parameter in model.parameters():
        if id(parameter) not in seen:  # tied weights count once
            seen.add(id(parameter))
            parameters += _local_bytes(parameter)
    state = 0
    for values in optimizer.state.values() if optimizer is not None else ():
        for value in values.values():
            if torch.is_tensor(value) and value.dim() > 0:
                state += _local_bytes(value)
    return {"parameterBytes": parameters, "optimizerBytes": state}


def memory_callback(report: dict[str, Any]) -> Any:
    """A TrainerCallback that measures :func:`rank_memory` at the end of training into
    ``report`` and prints it on stderr with the rank, so each rank's share is in the pod log."""
    from transformers import TrainerCallback

    class RankMemory(TrainerCallback):  # type: ignore[misc]
        def on_train_end(
            self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any
        ) -> None:
            report.update(rank_memory(model, kw.get("optimizer")))
            report["losses"] = [h["loss"] for h in state.log_history if "loss" in h]
            rank = os.environ.get("RANK", "0")
            line = json.dumps({"rank": int(rank), **report})
            print(f"selftaught train rank memory: {line}", file=sys.stderr, flush=True)

    return RankMemory()
