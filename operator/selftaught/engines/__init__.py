"""Text-generation engines behind one interface (:class:`Engine`).

``make_engine`` picks the implementation by name and imports it lazily: vLLM is a CUDA-only
dependency that CI never installs, and transformers is heavy enough that the operator must not
import it at all.
"""

from __future__ import annotations

from pathlib import Path

from selftaught.engines.base import Engine, Message

__all__ = ["Engine", "Message", "make_engine"]


def make_engine(kind: str, model_dir: Path, *, tensor_parallel: int = 1, seed: int = 0) -> Engine:
    """Load the model in ``model_dir`` into the named engine (``vllm`` or ``transformers``)."""
    if kind == "vllm":
        from selftaught.engines.vllm import VllmEngine

        return VllmEngine(model_dir, tensor_parallel=tensor_parallel, seed=seed)  # type: ignore[no-any-return]
    if kind == "transformers":
        from selftaught.engines.transformers import TransformersEngine

        return TransformersEngine(model_dir, seed=seed)
    raise ValueError(f"unknown engine {kind!r} (expected 'vllm' or 'transformers')")
