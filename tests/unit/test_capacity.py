"""The capacity arithmetic against figures computed by hand for Llama-3-8B and Llama-3-70B.

The configs' numbers are written here (from the models' config.json files) so a change to the
formulas shows up as a changed figure, not as a silently different estimate.
"""

from __future__ import annotations

import pytest

from selftaught import capacity, gpus
from selftaught.capacity import Architecture, GenerateSetup, TrainSetup

GIB = 1024**3

#: meta-llama/Meta-Llama-3-8B: untied embeddings, grouped-query attention with 8 KV heads.
LLAMA3_8B = Architecture(
    vocab_size=128256,
    hidden_size=4096,
    intermediate_size=14336,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
)
#: meta-llama/Meta-Llama-3-70B.
LLAMA3_70B = Architecture(
    vocab_size=128256,
    hidden_size=8192,
    intermediate_size=28672,
    num_hidden_layers=80,
    num_attention_heads=64,
    num_key_value_heads=8,
)

# 8B by hand (head_dim 4096/32 = 128, KV width 8 x 128 = 1024):
#   per layer: q 4096^2 = 16,777,216; k+v 2 x 4096 x 1024 = 8,388,608; o 16,777,216;
#              MLP 3 x 4096 x 14336 = 176,160,768; 2 norms 8,192      -> 218,112,000
#   32 layers: 6,979,584,000; embeddings + LM head 2 x 128256 x 4096 = 1,050,673,152;
#   final norm 4,096                                                  -> 8,030,261,248 (8.03 B)
# 70B by hand (head_dim 128, KV width 1024):
#   per layer: q 8192^2 = 67,108,864; k+v 2 x 8192 x 1024 = 16,777,216; o 67,108,864;
#              MLP 3 x 8192 x 28672 = 704,643,072; 2 norms 16,384    -> 855,654,400
#   80 layers: 68,452,352,000; embeddings + head 2 x 128256 x 8192 = 2,101,346,304;
#   final norm 8,192                                                  -> 70,553,706,496 (70.6 B)


@pytest.mark.parametrize(
    ("arch", "layer", "total"),
    [
        pytest.param(LLAMA3_8B, 218_112_000, 8_030_261_248, id="llama3-8b"),
        pytest.param(LLAMA3_70B, 855_654_400, 70_553_706_496, id="llama3-70b"),
    ],
)
def test_parameter_count_matches_the_hand_count(arch: Architecture, layer: int, total: int) -> None:
    assert arch.layer_parameters == layer
    assert arch.parameters == total


def test_tied_embeddings_count_the_matrix_once() -> None:
    tied = Architecture(**{**vars(LLAMA3_8B), "tie_word_embeddings": True})
    assert LLAMA3_8B.parameters - tied.parameters == 128256 * 4096


def test_lora_all_linear_trainable_count() -> None:
    # r x (in + out) per linear, 8B: q 4096+4096, k and v 2 x (4096+1024), o 4096+4096,
    # gate and up 2 x (4096+14336), down 14336+4096 = 81,920 per layer; x 16 x 32 = 41,943,040
    # (peft reports 41,943,040 trainable parameters for this setting).
    assert LLAMA3_8B.lora_parameters(16) == 41_943_040


@pytest.mark.parametrize(
    ("arch", "tp", "per_token"),
    [
        # 2 (K and V) x 32 layers x 8 heads x 128 x 2 bytes = 131,072 bytes = 128 KiB per token.
        pytest.param(LLAMA3_8B, 1, 131_072, id="8b-tp1"),
        # 70B on 8 GPUs: 8 KV heads / 8 = 1 per GPU: 2 x 80 x 1 x 128 x 2 = 40,960 bytes.
        pytest.param(LLAMA3_70B, 8, 40_960, id="70b-tp8"),
        # 16 ranks but 8 KV heads: vLLM replicates, still one head per GPU.
        pytest.param(LLAMA3_70B, 16, 40_960, id="70b-tp16-replicated"),
    ],
)
def test_kv_cache_bytes_per_token(arch: Architecture, tp: int, per_token: int) -> None:
    assert arch.kv_bytes_per_token(tp) == per_token


def test_70b_full_fine_tuning_on_16_gpus_holds_16_bytes_per_parameter_sharded() -> None:
    # 16 bytes x 70,553,706,496 = 1,128,859,303,936 (1.13 TB) / 16 GPUs = 70,553,706,496 bytes
    # = 65.7 GiB per GPU before anything else: most of an 80 GB H100 (79.6 GiB) is gone.
    estimate = capacity.estimate_training(LLAMA3_70B, TrainSetup(16, True, False, None, 8192, 1))
    assert estimate.parts["weights+grads+AdamW (fp32)"] == 70_553_706_496
    # Activations at 8192 tokens: checkpoints 80 x 8192 x 8192 x 2 = 10,737,418,240;
    # logits 8192 x 128256 x (2 + 4 + 4) = 10,506,731,520.
    assert estimate.parts["activation checkpoints"] == 10_737_418_240
    assert estimate.parts["logits"] == 10_506_731_520
    # Gathered: 2 bf16 layers + 1 fp32 layer gradient = 8 x 855,654,400 = 6,845,235,200, plus
    # the bf16 embeddings + head + norm 2 x 2,101,354,496 = 4,202,708,992.
    assert estimate.parts["gathered bf16 layers + layer grad"] == 11_047_944_192
    assert 110 * GIB < estimate.total < 116 * GIB  # does not fit 79.6 GiB


@pytest.mark.parametrize(
    ("setup", "low_gib", "high_gib"),
    [
        # 32 GPUs: the 1.13 TB of state is 32.9 GiB per GPU; + ~36 GiB of activations and
        # gathered layers + 10 % + 1 GiB = ~77 GiB: fits an H100, without much room.
        pytest.param(TrainSetup(32, True, False, None, 8192, 1), 75, 79, id="70b-32-gpus"),
        # Offload moves the 65.7 GiB of sharded state to host memory: ~41 GiB on the GPU.
        pytest.param(TrainSetup(16, True, True, None, 8192, 1), 39, 43, id="70b-16-offload"),
        # LoRA: bf16 base 141 GB / 16 = 8.2 GiB; adapters' state is small: ~50 GiB.
        pytest.param(TrainSetup(16, True, False, 16, 8192, 1), 48, 52, id="70b-16-lora"),
    ],
)
def test_70b_knobs_that_make_training_fit(setup: TrainSetup, low_gib: int, high_gib: int) -> None:
    total = capacity.estimate_training(LLAMA3_70B, setup).total
    assert low_gib * GIB < total < high_gib * GIB


def test_offload_reports_the_host_memory_it_needs() -> None:
    estimate = capacity.estimate_training(LLAMA3_70B, TrainSetup(16, True, True, None, 8192, 1))
    assert estimate.host_bytes == 70_553_706_496  # the sharded 16 bytes/param, per rank
    assert estimate.parts["weights+grads+AdamW (fp32)"] == 0


def test_8b_full_fine_tuning_on_one_80gb_gpu_does_not_fit_but_8_sharded_do() -> None:
    # One GPU: 16 x 8.03 B = 128.5 GB of state alone (119.7 GiB) > 79.6 GiB.
    alone = capacity.estimate_training(LLAMA3_8B, TrainSetup(1, False, False, None, 4096, 1))
    assert alone.parts["weights+grads+AdamW (fp32)"] == 16 * 8_030_261_248
    assert alone.parts["bf16 compute copy"] == 2 * 8_030_261_248
    assert alone.total > 80 * GIB
    # 8 GPUs sharded: 16.06 GB each (15.0 GiB) + activations at 4096 tokens: ~30 GiB.
    eight = capacity.estimate_training(LLAMA3_8B, TrainSetup(8, True, False, None, 4096, 1))
    assert eight.parts["weights+grads+AdamW (fp32)"] == 2 * 8_030_261_248
    assert 25 * GIB < eight.total < 35 * GIB


def test_8b_lora_on_one_gpu_keeps_the_base_in_bf16() -> None:
    # Frozen base 2 x 8.03 B = 16.06 GB; adapters 41.9 M x 16 bytes = 671 MB.
    estimate = capacity.estimate_training(LLAMA3_8B, TrainSetup(1, False, False, 16, 4096, 1))
    assert estimate.parts["frozen base (bf16)"] == 16_060_522_496
    assert estimate.parts["LoRA weights+grads+AdamW"] == 671_088_640
    assert estimate.total < 40 * GIB


def test_vllm_70b_judge_on_8_gpus() -> None:
    # Weights 2 x 70.55 B / 8 = 17,638,426,624 bytes (16.4 GiB); KV for 16 sequences of
    # 6656 tokens (512 + 2 x 2048 + 2048) x 40,960 bytes = 4,362,076,160 (4.1 GiB).
    estimate = capacity.estimate_generation(LLAMA3_70B, GenerateSetup("vllm", 8, 6656))
    assert estimate.parts["weights (bf16)"] == 17_638_426_624
    assert estimate.parts["KV cache"] == 4_362_076_160
    assert estimate.budget_share == 0.9
    assert estimate.total < 0.9 * 79.6 * GIB


def test_vllm_70b_on_one_gpu_cannot_hold_the_weights() -> None:
    estimate = capacity.estimate_generation(LLAMA3_70B, GenerateSetup("vllm", 1, 4096))
    assert estimate.parts["weights (bf16)"] == 141_107_412_992  # 131.4 GiB > any 80 GB card


def test_transformers_engine_holds_the_whole_model_and_its_batch() -> None:
    # 8B: weights 16.06 GB; KV for 128 sequences of 4096 tokens x 128 KiB = 64 GiB.
    estimate = capacity.estimate_generation(LLAMA3_8B, GenerateSetup("transformers", 1, 4096))
    assert estimate.parts["weights (bf16)"] == 16_060_522_496
    assert estimate.parts["KV cache"] == 128 * 4096 * 131_072
    assert estimate.budget_share == 1.0


@pytest.mark.parametrize(
    ("config", "error"),
    [
        pytest.param({"hidden_size": 8}, "vocab_size must be a positive integer", id="missing"),
        pytest.param(
            {
                "vocab_size": 8,
                "hidden_size": "8",
                "intermediate_size": 8,
                "num_hidden_layers": 1,
                "num_attention_heads": 1,
            },
            "hidden_size must be a positive integer",
            id="string",
        ),
        pytest.param({"num_local_experts": 8}, "mixture-of-experts", id="moe"),
    ],
)
def test_bad_config_names_the_file_and_field(config: dict[str, object], error: str) -> None:
    with pytest.raises(ValueError, match=f"cfg.json: {error}"):
        Architecture.from_config(config, source="cfg.json")


def test_config_reads_kv_heads_default_and_head_dim() -> None:
    config = {"vocab_size": 10, "hidden_size": 64, "intermediate_size": 128,
              "num_hidden_layers": 2, "num_attention_heads": 4, "head_dim": 32}  # fmt: skip
    arch = Architecture.from_config(config)
    assert (arch.num_key_value_heads, arch.dim_per_head) == (4, 32)


@pytest.mark.parametrize(
    ("selector", "gpu_memory", "name", "gib"),
    [
        pytest.param({gpus.PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"}, None,
                     "NVIDIA-H100-80GB-HBM3", 79.6, id="h100"),
        pytest.param({gpus.PRODUCT_LABEL: "nvidia-a100-sxm4-40gb"}, None,
                     "nvidia-a100-sxm4-40gb", 40.0, id="case-insensitive"),
        pytest.param({gpus.PRODUCT_LABEL: "NVIDIA-H200"}, None, "NVIDIA-H200", 140.4, id="h200"),
        pytest.param({gpus.PRODUCT_LABEL: "NVIDIA-A100-SXM4-80GB-MIG-3g.40gb"}, None,
                     "NVIDIA-A100-SXM4-80GB-MIG-3g.40gb", 37.3, id="mig-slice"),
        pytest.param({gpus.PRODUCT_LABEL: "NVIDIA-H100-80GB-HBM3"}, "40Gi",
                     "gpuMemory", 40.0, id="override-wins"),
    ],
)  # fmt: skip
def test_card_from_label_or_override(
    selector: dict[str, str], gpu_memory: str | None, name: str, gib: float
) -> None:
    card = gpus.card_of(node_selector=selector, gpu_memory=gpu_memory, field="f")
    assert card is not None
    assert (card.name, round(card.gib, 1)) == (name, gib)


def test_unknown_card_or_no_label_is_none() -> None:
    assert (
        gpus.card_of(node_selector={gpus.PRODUCT_LABEL: "Radeon"}, gpu_memory=None, field="f")
        is None
    )
    assert gpus.card_of(node_selector={}, gpu_memory=None, field="f") is None


def test_bad_gpu_memory_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"spec\.stages\.train\.gpuMemory: '80 gigs'"):
        gpus.parse_quantity("80 gigs", field="spec.stages.train.gpuMemory")
