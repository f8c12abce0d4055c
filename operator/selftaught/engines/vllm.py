"""The production engine: vLLM on one or more GPUs.

``vllm`` is a CUDA wheel pinned with its own torch and transformers in the worker image, so it is
imported only when an engine is built; the operator, the CPU test suite and the transformers
engine never need it. The paper's sampling settings (N=15, temperature 0.7, top-p 0.9) pass
through unchanged; ``max_tokens`` is always set because vLLM's default is only 16 tokens.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

Message = dict[str, str]

MISSING_VLLM = (
    "the vllm engine needs the 'vllm' package, which is not installed in this image: "
    "install selftaught[vllm] or set engine: transformers for this stage"
)


class VllmEngine:
    """One model loaded into vLLM; :meth:`generate` samples n completions per conversation.

    Construction loads the weights (minutes for a large model), so build one engine per stage
    attempt and reuse it for every batch.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        tensor_parallel: int = 1,
        dtype: str = "bfloat16",
        seed: int = 0,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        enable_prefix_caching: bool = True,
    ) -> None:
        """Args: ``tensor_parallel`` GPUs per replica; ``dtype`` of the weights;
        ``seed`` of vLLM's engine-level RNG; ``gpu_memory_utilization`` share of each GPU vLLM
        may take (weights + KV cache); ``max_model_len`` caps the context (None: the model's);
        ``enable_prefix_caching`` reuses the KV cache of the shared judging prompt prefix.
        """
        try:
            vllm = importlib.import_module("vllm")
        except ImportError as error:
            raise RuntimeError(MISSING_VLLM) from error
        self._vllm = vllm
        self.model_path = str(model_path)
        self.llm: Any = vllm.LLM(
            model=self.model_path,
            tensor_parallel_size=tensor_parallel,
            dtype=dtype,
            seed=seed,
            gpu_memory_utilization=gpu_memory_utilization,
            max_model_len=max_model_len,
            enable_prefix_caching=enable_prefix_caching,
        )

    def generate(
        self,
        conversations: Sequence[Sequence[Message]],
        *,
        n: int,
        temperature: float,
        top_p: float,
        max_new_tokens: int,
        seed: int,
    ) -> list[list[str]]:
        """For each conversation, ``n`` assistant completions (text only), in input order.

        One ``LLM.chat`` call for the whole batch lets vLLM schedule every sequence at once;
        a request-level ``seed`` makes the samples reproducible.
        """
        if not conversations:
            return []
        params = self._vllm.SamplingParams(
            n=n, temperature=temperature, top_p=top_p, seed=seed, max_tokens=max_new_tokens
        )
        batch = [[dict(message) for message in conversation] for conversation in conversations]
        outputs = self.llm.chat(batch, params)
        if len(outputs) != len(batch):
            raise RuntimeError(f"vLLM returned {len(outputs)} results for {len(batch)} prompts")
        return [[completion.text for completion in output.outputs] for output in outputs]
