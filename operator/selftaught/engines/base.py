"""The one interface every text generator offers: conversations in, N completions out.

Stages only ever talk to an :class:`Engine`, so the same stage code drives vLLM on a GPU node
and transformers on a laptop or in CI. Determinism is part of the contract: the same inputs and
seed give the same outputs on the same engine and hardware, which makes retried shards
reproduce their first attempt.

No single prompt may fail a batch: a prompt whose tokens plus ``max_new_tokens`` exceed the
model's context (:func:`fits`) gets no samples (an empty list) instead of an error, and the
stages count those as skipped. The select stage drops instructions that could not fit later
prompts before any of them is built (:meth:`Engine.prompt_lengths`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

#: One chat message: ``{"role": "user" | "assistant" | "system", "content": "..."}``.
Message = dict[str, str]


def fits(prompt_tokens: int, max_new_tokens: int, context: int | None) -> bool:
    """Whether a prompt of ``prompt_tokens`` leaves room for ``max_new_tokens`` in a context of
    ``context`` tokens (None: unknown, so everything fits)."""
    return context is None or prompt_tokens + max_new_tokens <= context


def context_of(config: dict[str, object]) -> int | None:
    """The context length a model's ``config.json`` declares (None when it names none)."""
    for key in ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length"):
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


class Engine(Protocol):
    """A loaded model that samples assistant replies."""

    #: Tokens the model attends over (prompt + generated); None when unknown.
    context_length: int | None
    #: Tokens the last :meth:`generate` call generated over all its samples (end tokens
    #: included): the cost the judge stage reports per iteration and per kept judgment.
    last_generated_tokens: int

    def prompt_lengths(self, conversations: Sequence[Sequence[Message]]) -> list[int]:
        """Tokens of each conversation rendered as a generation prompt (chat template
        applied), counted as the engine itself will count them."""
        ...

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
        """For each conversation, ``n`` assistant completions (prompt stripped, no end token);
        an empty list for a conversation that cannot fit with ``max_new_tokens`` (:func:`fits`).

        ``temperature == 0`` means greedy decoding (then ``n`` identical samples).
        """
        ...
