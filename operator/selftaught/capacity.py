"""How much GPU memory a stage needs, per GPU, from the model's architecture. Pure arithmetic.

The figures are estimates made before any GPU is held, so a run that cannot fit is refused in
seconds rather than found out as an OOMKilled pod after the model has been downloaded. Each
term is a named part of the total so the table can say *why* something does not fit. Every
constant below says what it stands for; the formulas are written for decoder-only Llama-style
models (the paper's family), which covers the config.json fields read here.

Conventions: bytes throughout; bf16 = 2 bytes, fp32 = 4 bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

BF16 = 2
FP32 = 4

#: Mixed precision as the train stage does it: fp32 master weights (4) + fp32 gradients (4)
#: + AdamW's two fp32 moments (8) per trainable parameter; the bf16 compute copy is separate.
TRAINABLE_STATE_BYTES = FP32 + FP32 + 2 * FP32
#: Allocator fragmentation, NCCL buffers and temporaries: 10 % on top of the counted tensors is
#: what PyTorch's caching allocator typically keeps reserved beyond what is allocated.
FRAMEWORK_OVERHEAD = 0.10
#: CUDA context, cuBLAS and NCCL workspaces: ~0.5-1 GiB per process; counted once per GPU.
CUDA_CONTEXT_BYTES = 1024**3
#: Share of each GPU vLLM takes for weights + activations + KV cache (vLLM's default, and the
#: value engines/vllm.py passes); the rest stays free for the CUDA context and graphs.
VLLM_GPU_MEMORY_UTILIZATION = 0.9
#: Tokens vLLM runs through the model at once while profiling (its default
#: max_num_batched_tokens for offline use): sets the activation peak.
VLLM_BATCHED_TOKENS = 8192
#: Sequences vLLM samples at once (its default max_num_seqs): their fp32 logits are live.
VLLM_MAX_SEQS = 256
#: Sequences whose KV cache must fit together for generation to be worth a GPU: below ~16 a
#: decode step is bound by reading the weights and a 20k-instruction stage takes days.
MIN_CONCURRENT_SEQUENCES = 16
#: Sequences the transformers engine generates per batch (engines/transformers.py's default).
TRANSFORMERS_BATCH = 128


@dataclass(frozen=True)
class Architecture:
    """The numbers of a model's config.json that decide its memory."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    tie_word_embeddings: bool = False
    head_dim: int | None = None
    attention_bias: bool = False
    max_position_embeddings: int | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any], *, source: str = "config.json") -> Architecture:
        """Read a Hugging Face config.json; a missing or bad field is named with ``source``."""
        if "num_local_experts" in config or "num_experts" in config:
            raise ValueError(f"{source}: mixture-of-experts models are not modelled")
        text = config.get("text_config")
        if isinstance(text, dict) and "hidden_size" not in config:
            config = text  # multimodal wrappers keep the language model's numbers here
        values: dict[str, Any] = {}
        for name in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                     "num_attention_heads"):  # fmt: skip
            value = config.get(name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{source}: {name} must be a positive integer, got {value!r}")
            values[name] = value
        kv = config.get("num_key_value_heads") or values["num_attention_heads"]
        return cls(
            **values,
            num_key_value_heads=int(kv),
            tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
            head_dim=config.get("head_dim") or None,
            attention_bias=bool(config.get("attention_bias", False)),
            max_position_embeddings=config.get("max_position_embeddings"),
        )

    @property
    def dim_per_head(self) -> int:
        return self.head_dim or self.hidden_size // self.num_attention_heads

    @property
    def layer_parameters(self) -> int:
        """One decoder layer: q, k, v, o projections, the SwiGLU MLP and two RMSNorms."""
        h, d = self.hidden_size, self.dim_per_head
        q, kv = self.num_attention_heads * d, self.num_key_value_heads * d
        attention = h * q + 2 * h * kv + q * h
        if self.attention_bias:
            attention += q + 2 * kv
        return attention + 3 * h * self.intermediate_size + 2 * h

    @property
    def outer_parameters(self) -> int:
        """Outside the layers: embeddings, the LM head unless tied, the final norm."""
        embed = self.vocab_size * self.hidden_size
        return embed * (1 if self.tie_word_embeddings else 2) + self.hidden_size

    @property
    def parameters(self) -> int:
        return self.num_hidden_layers * self.layer_parameters + self.outer_parameters

    def lora_parameters(self, rank: int) -> int:
        """Trainable LoRA parameters with target_modules="all-linear" (as the train stage):
        r x (in + out) for each of the seven linear layers of every decoder layer."""
        h, i, d = self.hidden_size, self.intermediate_size, self.dim_per_head
        q, kv = self.num_attention_heads * d, self.num_key_value_heads * d
        per_layer = (h + q) + 2 * (h + kv) + (q + h) + 2 * (h + i) + (i + h)
        return rank * per_layer * self.num_hidden_layers

    def kv_bytes_per_token(self, tensor_parallel: int = 1) -> int:
        """bf16 keys and values of one token on one GPU; KV heads split over tensor-parallel
        ranks, replicated when there are fewer heads than ranks (as vLLM does)."""
        heads = max(1, self.num_key_value_heads // tensor_parallel)
        return 2 * self.num_hidden_layers * heads * self.dim_per_head * BF16


@dataclass(frozen=True)
class TrainSetup:
    """What the train stage will do, in the terms that decide memory."""

    ranks: int
    sharded: bool
    offload: bool
    lora_rank: int | None
    max_length: int
    micro_batch: int


@dataclass(frozen=True)
class GenerateSetup:
    """A generation stage: engine, tensor parallel, and the longest sequence it must hold."""

    engine: str
    tensor_parallel: int
    sequence_tokens: int


@dataclass
class Estimate:
    """Bytes per GPU, by part; ``budget`` is how much of the card the stage may use."""

    parts: dict[str, int] = field(default_factory=dict)
    #: Share of the card the stage may fill (vLLM leaves 10 % free); 1.0 for training.
    budget_share: float = 1.0
    #: Host (CPU) bytes per pod the estimate moved off the GPU (offload), if any.
    host_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def _with_overhead(parts: dict[str, int]) -> dict[str, int]:
    counted = sum(parts.values())
    parts["overhead"] = int(counted * FRAMEWORK_OVERHEAD) + CUDA_CONTEXT_BYTES
    return parts


def training_activations(arch: Architecture, *, tokens: int) -> dict[str, int]:
    """Activation memory with activation checkpointing over ``tokens`` = maxLength x micro batch.

    * checkpoints: one bf16 hidden state per layer boundary is kept for the backward pass;
    * one layer recomputed: its saved tensors (norm in/out x2, q, k, v, roped q/k, attention
      out, o_proj out: ~10 h + 2 kv; gate, up, silu, product: 4 i) in bf16, doubled for their
      gradients during that layer's backward (flash/SDPA attention: no seq^2 term);
    * logits: bf16 logits, their fp32 upcast for the loss and its fp32 gradient (V per token).
    """
    h, i = arch.hidden_size, arch.intermediate_size
    kv = arch.num_key_value_heads * arch.dim_per_head
    layer = (10 * h + 2 * kv + 4 * i) * BF16 * 2
    return {
        "activation checkpoints": arch.num_hidden_layers * tokens * h * BF16,
        "recomputed layer": tokens * layer,
        "logits": tokens * arch.vocab_size * (BF16 + FP32 + FP32),
    }


def estimate_training(arch: Architecture, setup: TrainSetup) -> Estimate:
    """Per-GPU memory of the train stage (see the module docstring for the conventions).

    Full fine-tuning keeps :data:`TRAINABLE_STATE_BYTES` per parameter; LoRA keeps the frozen
    base in bf16 and that state only for the adapters. Full sharding (FSDP) divides the kept
    state by the ranks, but each GPU briefly holds whole bf16 layers (the one computing and the
    one prefetched), a whole layer's fp32 gradient before its reduce-scatter, and the unsharded
    embeddings/LM head (the root unit stays gathered). Without sharding every GPU holds all of
    it, plus autocast's bf16 copy of the weights. Offload (FSDP2's CPUOffloadPolicy) moves the
    sharded parameters, gradients and optimizer state to host memory.
    """
    n, r = arch.parameters, setup.ranks
    share = r if setup.sharded else 1
    out = Estimate()
    if setup.lora_rank is None:
        kept = n * TRAINABLE_STATE_BYTES
        out.parts["weights+grads+AdamW (fp32)"] = kept // share
    else:
        adapters = arch.lora_parameters(setup.lora_rank)
        kept = n * BF16 + adapters * TRAINABLE_STATE_BYTES
        out.parts["frozen base (bf16)"] = n * BF16 // share
        out.parts["LoRA weights+grads+AdamW"] = adapters * TRAINABLE_STATE_BYTES // share
    if setup.offload and setup.sharded:
        out.host_bytes = kept // r
        for name in list(out.parts):
            out.parts[name] = 0
        out.notes.append("sharded state offloaded to host memory")
    elif setup.offload:
        out.notes.append("offload needs sharding (more than one rank): ignored")
    if setup.sharded:
        layer = arch.layer_parameters
        out.parts["gathered bf16 layers + layer grad"] = (
            2 * layer * BF16 + layer * FP32 + arch.outer_parameters * BF16
        )
    elif setup.lora_rank is None:
        out.parts["bf16 compute copy"] = n * BF16
    out.parts.update(training_activations(arch, tokens=setup.max_length * setup.micro_batch))
    _with_overhead(out.parts)
    return out


def estimate_generation(arch: Architecture, setup: GenerateSetup) -> Estimate:
    """Per-GPU memory of a generation stage (select, pairs, judge, evaluate).

    vLLM: bf16 weights split over tensor-parallel ranks, the activation peak of one profiling
    pass, and KV cache for :data:`MIN_CONCURRENT_SEQUENCES` sequences of ``sequence_tokens``;
    it may use :data:`VLLM_GPU_MEMORY_UTILIZATION` of the card. transformers: the whole bf16
    model on one GPU and KV cache for its batch of :data:`TRANSFORMERS_BATCH` sequences.
    """
    out = Estimate()
    h, i, v = arch.hidden_size, arch.intermediate_size, arch.vocab_size
    if setup.engine == "vllm":
        tp = setup.tensor_parallel
        out.budget_share = VLLM_GPU_MEMORY_UTILIZATION
        out.parts["weights (bf16)"] = arch.parameters * BF16 // tp
        out.parts["activation peak"] = (
            VLLM_BATCHED_TOKENS * (4 * h + 2 * i) * BF16 // tp + VLLM_MAX_SEQS * v * FP32
        )
        sequences = MIN_CONCURRENT_SEQUENCES
        out.parts["KV cache"] = sequences * setup.sequence_tokens * arch.kv_bytes_per_token(tp)
        out.notes.append(f"KV cache for {sequences} sequences of {setup.sequence_tokens} tokens")
        return out
    out.parts["weights (bf16)"] = arch.parameters * BF16
    batch = TRANSFORMERS_BATCH
    out.parts["KV cache"] = batch * setup.sequence_tokens * arch.kv_bytes_per_token()
    out.parts["activations + logits"] = batch * (4 * h + 2 * i) * BF16 + batch * v * FP32
    out.notes.append(f"KV cache for {batch} sequences of {setup.sequence_tokens} tokens")
    _with_overhead(out.parts)
    return out
