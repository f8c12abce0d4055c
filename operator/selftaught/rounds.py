"""Adaptive rejection sampling: draw judgments in rounds, stop a prompt once it has what it needs.

Pure: the generator and the stop rule are arguments, so this module does no I/O and knows
nothing of judging. Why rounds: the N samples of one prompt are independent draws from the same
model, so "the first correct sample" is distributed like "a correct sample picked at random among
N", and the prompts that end without any correct sample after N draws are the same in
distribution. Sampling k at a time and stopping a prompt as soon as its stop rule holds gives the
same kept data at a fraction of the tokens (a judge right 75 % of the time needs ~1.3 draws per
pair instead of 15).

Contract:

* Every round is **one** ``generate`` call over the prompts still open, all of which have drawn
  the same number of samples, so each gets ``min(round_size, budget - drawn)`` more.
* Round r's seed is :func:`round_seed` (``seed`` itself for round 0), so ``round_size >= budget``
  is exactly today's fixed sampling (one call, ``n = budget``, the stage's seed) and the whole
  schedule is a function of the inputs and the seed: a retried shard reproduces its output.
* A prompt the engine gives no samples (it cannot fit the context) is closed as skipped.
* The stop rule sees all samples of a prompt so far; the judge stops on the first correct
  judgment, DPO can stop on "one correct and one incorrect".
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")

#: ``generate(items, n, seed) -> (samples per item, tokens generated)``: one engine call.
Generate = Callable[[list[Item], int, int], tuple[list[list[str]], int]]
#: ``done(item, samples so far) -> bool``: whether the item needs no more samples.
Done = Callable[[Item, list[str]], bool]


def round_seed(seed: int, round_no: int) -> int:
    """Round ``round_no``'s sampling seed: ``seed`` for round 0, a hash of both after (31 bits,
    as engines take it), so rounds draw independent samples and the schedule is reproducible."""
    if round_no == 0:
        return seed
    digest = hashlib.blake2b(f"{seed}/{round_no}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 2**31


@dataclass
class Rounds(Generic[Item]):
    """What the rounds drew: per item (in input order) its samples; what it cost."""

    #: Samples of each item, in draw order (empty for a skipped item).
    samples: list[list[str]]
    #: Indices of items the engine gave no samples (too long for the context).
    skipped: set[int] = field(default_factory=set)
    #: Generate calls made (rounds), samples drawn in all, tokens the engine generated.
    rounds: int = 0
    drawn: int = 0
    tokens: int = 0


def sample_in_rounds(
    items: Sequence[Item],
    *,
    generate: Generate[Item],
    done: Done[Item],
    budget: int,
    round_size: int,
    seed: int,
) -> Rounds[Item]:
    """Draw up to ``budget`` samples per item, ``round_size`` at a time, until ``done`` holds.

    ``round_size >= budget`` is fixed sampling: one call for everything, no stop rule consulted.
    """
    if budget < 1 or round_size < 1:
        raise ValueError(f"budget ({budget}) and round_size ({round_size}) must be >= 1")
    result: Rounds[Item] = Rounds(samples=[[] for _ in items])
    open_ = list(range(len(items)))
    drawn = 0
    while open_ and drawn < budget:
        n = min(round_size, budget - drawn)
        samples, tokens = generate([items[i] for i in open_], n, round_seed(seed, result.rounds))
        if len(samples) != len(open_):
            raise RuntimeError(f"the engine returned {len(samples)} results for {len(open_)}")
        result.rounds += 1
        result.tokens += tokens
        still_open = []
        for index, new in zip(open_, samples, strict=True):
            if not new:
                result.skipped.add(index)
                continue
            result.samples[index].extend(new)
            result.drawn += len(new)
            if not done(items[index], result.samples[index]):
                still_open.append(index)
        open_ = still_open
        drawn += n
    return result
