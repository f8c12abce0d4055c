"""The vLLM engine against a fake ``vllm`` module placed at the import boundary.

The fake refuses an over-long prompt exactly as vLLM does: ``LLM.chat`` raises ``ValueError``
("The decoder prompt (length N) is longer than the maximum model length of M ...") for the whole
batch when any one prompt reaches ``max_model_len``, counting tokens with its tokenizer.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from selftaught.artifacts import shard_prefix
from selftaught.engines.vllm import VllmEngine
from selftaught.phases import Stage
from selftaught.stages import judge
from selftaught.storage import MemoryStorage
from tests.unit.stage_env import small_model, spec, task


@dataclass
class Completion:
    text: str
    token_ids: list[int] = field(default_factory=lambda: [1, 2, 3])


@dataclass
class RequestOutput:
    outputs: list[Completion]


@dataclass
class FakeVllm:
    """Records what reaches ``LLM(...)``, ``SamplingParams(...)`` and ``LLM.chat``.

    ``extra_tokens`` makes the fake count each prompt longer than the engine's pre-check does
    (as a template difference would), so the engine's fallback is exercised too.
    """

    llm_kwargs: dict[str, Any] = field(default_factory=dict)
    sampling_kwargs: list[dict[str, Any]] = field(default_factory=list)
    chats: list[tuple[Any, Any]] = field(default_factory=list)
    refused: int = 0
    extra_tokens: int = 0
    verdict: str = "reasoning... [[A]]"

    def module(self) -> types.ModuleType:
        recorder = self

        class SamplingParams:
            def __init__(self, **kwargs: Any) -> None:
                recorder.sampling_kwargs.append(kwargs)
                self.n = kwargs["n"]

        class LLM:
            def __init__(self, **kwargs: Any) -> None:
                recorder.llm_kwargs = kwargs
                self.tokenizer: Any = None

            def get_tokenizer(self) -> Any:
                from transformers import AutoTokenizer

                self.tokenizer = AutoTokenizer.from_pretrained(recorder.llm_kwargs["model"])
                return self.tokenizer

            def chat(self, messages: Any, sampling_params: Any) -> list[RequestOutput]:
                limit = recorder.llm_kwargs.get("max_model_len")
                if limit is not None and self.tokenizer is not None:
                    for conversation in messages:
                        text = self.tokenizer.apply_chat_template(
                            conversation, add_generation_prompt=True, tokenize=False
                        )
                        ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                        length = len(ids) + recorder.extra_tokens
                        if length >= limit:  # no room for even one new token
                            recorder.refused += 1
                            raise ValueError(
                                f"The decoder prompt (length {length}) is longer than the "
                                f"maximum model length of {limit}. Make sure that "
                                "`max_model_len` is no smaller than the number of text tokens."
                            )
                recorder.chats.append((messages, sampling_params))
                if recorder.verdict and limit is not None:
                    return [
                        RequestOutput([Completion(recorder.verdict)] * sampling_params.n)
                        for _ in messages
                    ]
                return [
                    RequestOutput([Completion(f"{i}:{j}") for j in range(sampling_params.n)])
                    for i in range(len(messages))
                ]

        module = types.ModuleType("vllm")
        module.LLM = LLM  # type: ignore[attr-defined]
        module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
        return module


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> FakeVllm:
    fake = FakeVllm()
    monkeypatch.setitem(sys.modules, "vllm", fake.module())
    return fake


CONVERSATIONS = [
    [{"role": "system", "content": "judge"}, {"role": "user", "content": "Q1"}],
    [{"role": "user", "content": "Q2"}],
]


def test_engine_arguments_reach_llm(fake_vllm: FakeVllm) -> None:
    VllmEngine(
        "/cache/judge",
        tensor_parallel=4,
        dtype="float16",
        seed=11,
        gpu_memory_utilization=0.85,
        max_model_len=8192,
        enable_prefix_caching=False,
    )
    assert fake_vllm.llm_kwargs == {
        "model": "/cache/judge",
        "tensor_parallel_size": 4,
        "dtype": "float16",
        "seed": 11,
        "gpu_memory_utilization": 0.85,
        "max_model_len": 8192,
        "enable_prefix_caching": False,
    }


def test_defaults(fake_vllm: FakeVllm) -> None:
    VllmEngine("/m")
    assert fake_vllm.llm_kwargs["tensor_parallel_size"] == 1
    assert fake_vllm.llm_kwargs["dtype"] == "bfloat16"
    assert fake_vllm.llm_kwargs["enable_prefix_caching"] is True
    assert fake_vllm.llm_kwargs["max_model_len"] is None


def test_paper_sampling_settings_pass_unchanged(fake_vllm: FakeVllm) -> None:
    engine = VllmEngine("/m")
    result = engine.generate(
        CONVERSATIONS, n=15, temperature=0.7, top_p=0.9, max_new_tokens=1024, seed=3
    )
    assert fake_vllm.sampling_kwargs == [
        {"n": 15, "temperature": 0.7, "top_p": 0.9, "seed": 3, "max_tokens": 1024}
    ]
    messages, _ = fake_vllm.chats[0]
    assert messages == CONVERSATIONS
    assert len(result) == 2
    assert all(len(r) == 15 for r in result)
    assert result[1][14] == "1:14"


def test_empty_batch_calls_nothing(fake_vllm: FakeVllm) -> None:
    engine = VllmEngine("/m")
    assert engine.generate([], n=2, temperature=0.0, top_p=1.0, max_new_tokens=8, seed=0) == []
    assert fake_vllm.chats == []


def test_missing_vllm_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes "import vllm" raise ImportError
    with pytest.raises(
        RuntimeError, match=r"install selftaught\[vllm\] or set engine: transformers"
    ):
        VllmEngine("/m")


# --------------------------------------------------------------------- prompt-length budget

#: The small test model has 128 positions: this prompt alone is longer.
LONG = [{"role": "user", "content": "judge: " + " ".join(["add 1 2"] * 80)}]
SHORT = [{"role": "user", "content": "judge: add 1 2 | A: 3 | B: 4"}]


def test_max_model_len_is_the_context_the_model_declares(fake_vllm: FakeVllm) -> None:
    engine = VllmEngine(small_model())
    assert fake_vllm.llm_kwargs["max_model_len"] == 128  # config.json max_position_embeddings
    assert engine.context_length == 128


def test_a_prompt_that_cannot_fit_gets_no_samples_and_the_batch_survives(
    fake_vllm: FakeVllm,
) -> None:
    engine = VllmEngine(small_model())
    out = engine.generate(
        [SHORT, LONG, SHORT], n=3, temperature=0.7, top_p=0.9, max_new_tokens=16, seed=0
    )
    assert [len(samples) for samples in out] == [3, 0, 3]
    assert [len(messages) for messages, _ in fake_vllm.chats] == [2]  # LONG never sent
    assert fake_vllm.refused == 0


def test_room_for_max_new_tokens_is_part_of_the_budget(fake_vllm: FakeVllm) -> None:
    engine = VllmEngine(small_model())
    (size,) = engine.prompt_lengths([SHORT])
    fits = engine.generate(
        [SHORT], n=1, temperature=0.0, top_p=1.0, max_new_tokens=128 - size, seed=0
    )
    over = engine.generate(
        [SHORT], n=1, temperature=0.0, top_p=1.0, max_new_tokens=129 - size, seed=0
    )
    assert (len(fits[0]), len(over[0])) == (1, 0)


def test_when_vllm_refuses_a_batch_for_length_the_refused_prompt_alone_is_skipped(
    fake_vllm: FakeVllm,
) -> None:
    """The pre-check counted fewer tokens than vLLM (a template difference): vLLM aborts the
    batch; the engine splits it until the refused prompt stands alone."""
    engine = VllmEngine(small_model())
    (size,) = engine.prompt_lengths([SHORT])
    near = [{"role": "user", "content": SHORT[0]["content"] + " | pad" * 8}]
    (near_size,) = engine.prompt_lengths([near])
    fake_vllm.extra_tokens = 128 - near_size  # vLLM sees `near` as exactly max_model_len
    batch = [SHORT, SHORT, near, SHORT]
    out = engine.generate(batch, n=2, temperature=0.7, top_p=0.9, max_new_tokens=1, seed=0)
    assert [len(samples) for samples in out] == [2, 2, 0, 2]
    assert fake_vllm.refused >= 1
    assert size < near_size < 127  # the pre-check alone would have let `near` through


def test_other_vllm_errors_still_fail_the_shard(fake_vllm: FakeVllm, monkeypatch: Any) -> None:
    engine = VllmEngine(small_model())

    def broken(messages: Any, params: Any) -> Any:
        raise ValueError("temperature must be non-negative")

    monkeypatch.setattr(engine.llm, "chat", broken)
    with pytest.raises(ValueError, match="temperature"):
        engine.generate([SHORT], n=1, temperature=0.0, top_p=1.0, max_new_tokens=4, seed=0)


def test_a_judge_shard_with_an_over_long_pair_succeeds_and_counts_it(
    fake_vllm: FakeVllm,
) -> None:
    vllm_stage = {"engine": "vllm", "gpus": 1, "cpu": "1"}
    run_spec = spec(stages={"judge": vllm_stage})
    storage = MemoryStorage("budget")
    long_answer = " ".join(["1 2 3"] * 60)
    pairs = [
        {"id": i, "instruction": f"add {i} 2", "chosen": str(i + 2), "rejected": "9"}
        for i in range(4)
    ]
    pairs[2]["chosen"] = long_answer  # this pair's judging prompt cannot fit 128 positions
    with storage.output(shard_prefix("ns", "r", 0, Stage.PAIRS, 0)) as out:
        out.write_jsonl("pairs.jsonl", [{**p, "split": "train"} for p in pairs])
    summary = judge.run(task(Stage.JUDGE, run_spec, iteration=1), storage, 0).to_wire()
    assert summary["pairs"] == 4
    assert summary["skippedTooLong"] == 1
    assert summary["sampled"] == 3 * run_spec.judging.samples_per_pair
    assert fake_vllm.refused == 0
    kept = [
        row
        for _, row in storage.read_jsonl(
            shard_prefix("ns", "r", 1, Stage.JUDGE, 0) + "/judgments.jsonl"
        )
    ]
    assert 2 not in {row["pairId"] for row in kept}
    assert {row["winner"] for row in kept} == {"A"}  # the fake always answers [[A]]
