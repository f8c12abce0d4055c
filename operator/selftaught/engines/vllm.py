"""The production engine: vLLM on one or more GPUs.

``vllm`` is a CUDA wheel pinned with its own torch and transformers in the worker image, so it is
imported only when an engine is built; the operator, the CPU test suite and the transformers
engine never need it. The paper's sampling settings (N=15, temperature 0.7, top-p 0.9) pass
through unchanged; ``max_tokens`` is always set because vLLM's default is only 16 tokens.

Prompt-length budget: vLLM refuses a prompt longer than ``max_model_len`` with a ``ValueError``
that aborts the whole ``LLM.chat`` batch, so one long instruction would fail a shard on every
retry. The engine therefore passes ``max_model_len`` deliberately (the context the model's
``config.json`` declares, unless given), counts each prompt's tokens with vLLM's own tokenizer
and chat template before the call, and gives a prompt that cannot fit with ``max_new_tokens``
no samples. Should vLLM still refuse a batch for length (a count that differs by a token), the
batch is split in halves until the prompt it refuses stands alone and is skipped.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selftaught.engines.base import Message, context_of, fits

#: What vLLM says when a prompt is too long for ``max_model_len`` (the batch is aborted).
TOO_LONG = re.compile(r"maximum model length|context length|too long", re.IGNORECASE)

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
        may take (weights + KV cache); ``max_model_len`` caps the context (None: the one the
        model's ``config.json`` declares, passed to vLLM explicitly);
        ``enable_prefix_caching`` reuses the KV cache of the shared judging prompt prefix.
        """
        try:
            vllm = importlib.import_module("vllm")
        except ImportError as error:
            raise RuntimeError(MISSING_VLLM) from error
        self._vllm = vllm
        self.model_path = str(model_path)
        if max_model_len is None:
            max_model_len = declared_context(Path(model_path))
        self.context_length: int | None = max_model_len
        self._tokenizer: Any = None
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
        results: list[list[str]] = [[] for _ in batch]
        lengths = self.prompt_lengths(batch) if self.context_length else [0] * len(batch)
        chosen = [
            i for i, size in enumerate(lengths) if fits(size, max_new_tokens, self.context_length)
        ]
        self._chat(batch, chosen, params, results)
        return results

    def prompt_lengths(self, conversations: Sequence[Sequence[Message]]) -> list[int]:
        """Prompt tokens as vLLM counts them: its tokenizer, the chat template rendered to text
        with the generation prompt, then encoded without extra special tokens (as ``LLM.chat``)."""
        if not conversations:
            return []
        if self._tokenizer is None:
            self._tokenizer = self.llm.get_tokenizer()
        texts = self._tokenizer.apply_chat_template(
            [list(c) for c in conversations], add_generation_prompt=True, tokenize=False
        )
        encoded = self._tokenizer(list(texts), add_special_tokens=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def _chat(
        self, batch: list[Any], indices: list[int], params: Any, results: list[list[str]]
    ) -> None:
        """Sample ``batch[i]`` for each i in ``indices`` into ``results[i]``; a part vLLM refuses
        for length is split in halves, and a single refused prompt keeps no samples."""
        if not indices:
            return
        try:
            outputs = self.llm.chat([batch[i] for i in indices], params)
        except ValueError as error:
            if not TOO_LONG.search(str(error)):
                raise
            if len(indices) > 1:
                middle = len(indices) // 2
                self._chat(batch, indices[:middle], params, results)
                self._chat(batch, indices[middle:], params, results)
            return
        if len(outputs) != len(indices):
            raise RuntimeError(f"vLLM returned {len(outputs)} results for {len(indices)} prompts")
        for i, output in zip(indices, outputs, strict=True):
            results[i] = [completion.text for completion in output.outputs]


def declared_context(model_dir: Path) -> int | None:
    """The context length in ``model_dir/config.json`` (None when absent or unreadable)."""
    try:
        config = json.loads((model_dir / "config.json").read_text())
    except (OSError, ValueError):
        return None
    return context_of(config) if isinstance(config, dict) else None
