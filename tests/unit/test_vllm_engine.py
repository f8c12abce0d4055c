"""The vLLM engine against a fake ``vllm`` module placed at the import boundary."""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from selftaught.engines.vllm import VllmEngine


@dataclass
class Completion:
    text: str


@dataclass
class RequestOutput:
    outputs: list[Completion]


@dataclass
class FakeVllm:
    """Records what reaches ``LLM(...)``, ``SamplingParams(...)`` and ``LLM.chat``."""

    llm_kwargs: dict[str, Any] = field(default_factory=dict)
    sampling_kwargs: list[dict[str, Any]] = field(default_factory=list)
    chats: list[tuple[Any, Any]] = field(default_factory=list)

    def module(self) -> types.ModuleType:
        recorder = self

        class SamplingParams:
            def __init__(self, **kwargs: Any) -> None:
                recorder.sampling_kwargs.append(kwargs)
                self.n = kwargs["n"]

        class LLM:
            def __init__(self, **kwargs: Any) -> None:
                recorder.llm_kwargs = kwargs

            def chat(self, messages: Any, sampling_params: Any) -> list[RequestOutput]:
                recorder.chats.append((messages, sampling_params))
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
