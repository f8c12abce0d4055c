"""The one interface every text generator offers: conversations in, N completions out.

Stages only ever talk to an :class:`Engine`, so the same stage code drives vLLM on a GPU node
and transformers on a laptop or in CI. Determinism is part of the contract: the same inputs and
seed give the same outputs on the same engine and hardware, which makes retried shards
reproduce their first attempt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

#: One chat message: ``{"role": "user" | "assistant" | "system", "content": "..."}``.
Message = dict[str, str]


class Engine(Protocol):
    """A loaded model that samples assistant replies."""

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
        """For each conversation, ``n`` assistant completions (prompt stripped, no end token).

        ``temperature == 0`` means greedy decoding (then ``n`` identical samples).
        """
        ...
