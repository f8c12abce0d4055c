"""Rejection sampling's rules: which judgments may become training targets, and A/B balance.

Pure: texts and counts in, decisions out. The judge stage samples N judgments per pair and keeps
one correct judgment per pair; this module decides what "correct" means and which position each
kept judgment is taken from.

* **A judgment is keepable** only if RewardBench's official scorer reads it as the known winner
  (:func:`selftaught.scoring.official_verdict`) *and* it names no other verdict. Meta's release
  drops any judgment containing both markers; so does this module, and it also drops declared
  ties (``[[C]]``) and spaced markers (``[[ A ]]``, which the official scorer cannot read): a
  judge trained on such texts learns a habit the official scorer marks wrong.
* **Balance after rejection** (``judging.bothOrders``): each pair was judged with the winner as
  A and as B. A position-biased judge is right more often in its favoured position, so balancing
  the prompts is not enough; :func:`balance_positions` chooses, per pair, which order's correct
  judgment is kept so that the kept A-better and B-better counts are equal (they differ by at
  most one when the total is odd), dropping the surplus of the favoured position only when no
  choice can even them out.
* **DPO preferences** (``training.method: dpo``, :func:`preference`): from one judging prompt's
  samples, a kept judgment is *chosen* and an incorrect one *rejected*. Only a "kept" judgment
  is ever chosen. The rejected one is preferably a clean wrong verdict (the signal Meta's
  release trains on: reasoning that reached the loser); when a prompt has none, a two-marker,
  tie or unparsable judgment serves instead (in that order). They may, because the official
  scorer never credits them as a win (tie and unparsable score 0.5, two markers are read as
  whichever comes first), so "prefer the correct verdict over this" is a true preference; and
  pushing them down teaches the verdict format a weak seed lacks. A prompt with no kept or no
  incorrect judgment yields no preference (:func:`has_preference`, also the stopping rule for
  adaptive sampling rounds under DPO: one of each).
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from selftaught.scoring import official_verdict

Position = Literal["A", "B"]
#: Why a judgment was not kept; "kept" when it was a correct, clean verdict.
Reason = Literal["kept", "wrong", "both", "tie", "unparsable"]

#: Any verdict-like marker, spaces and case tolerated: what a judgment *names*, read generously.
_MARKER = re.compile(r"\[\[\s*([A-Ca-c])\s*\]\]")


def named_verdicts(text: str) -> set[str]:
    """Every verdict letter a judgment names in a ``[[X]]``-like marker (upper-cased)."""
    return {letter.upper() for letter in _MARKER.findall(text)}


def classify(text: str, winner: Position) -> Reason:
    """Whether one judgment may be kept for a pair whose known winner sits at ``winner``.

    Order of the checks: naming both A and B ("both") or a tie ("tie") rejects a judgment before
    its verdict is looked at; then the official reading decides "unparsable", "wrong" or "kept".
    """
    named = named_verdicts(text)
    if {"A", "B"} <= named:
        return "both"
    if "C" in named:
        return "tie"
    verdict = official_verdict(text)
    if verdict not in ("A", "B"):
        return "unparsable"
    return "kept" if verdict == winner else "wrong"


@dataclass(frozen=True)
class Balance:
    """Which position each pair's kept judgment comes from, and what balancing dropped."""

    chosen: dict[int, Position]
    dropped: int


def balance_positions(
    candidates: Mapping[int, Sequence[Position]], *, rng: random.Random
) -> Balance:
    """Pick one position per pair from the positions with a kept judgment, balancing A and B.

    ``candidates`` maps a pair id to the positions (A, B or both) in which it has at least one
    keepable judgment; pairs with none are absent. Pairs with one position are fixed; flexible
    pairs (both) first fill the smaller side, then split evenly; if the fixed pairs alone are
    unbalanced beyond what the flexible ones can fix, seeded random pairs of the larger side are
    dropped until the two sides differ by at most one.
    """
    fixed: dict[Position, list[int]] = {"A": [], "B": []}
    flexible: list[int] = []
    for pair in sorted(candidates):
        options = set(candidates[pair])
        if options == {"A", "B"}:
            flexible.append(pair)
        elif options in ({"A"}, {"B"}):
            fixed["A" if "A" in options else "B"].append(pair)
    rng.shuffle(flexible)
    chosen: dict[int, Position] = dict.fromkeys(fixed["A"], "A")
    chosen.update(dict.fromkeys(fixed["B"], "B"))
    counts = {"A": len(fixed["A"]), "B": len(fixed["B"])}
    for pair in flexible:
        side: Position = "A" if counts["A"] < counts["B"] else "B"
        if counts["A"] == counts["B"]:
            side = "A" if rng.random() < 0.5 else "B"
        chosen[pair] = side
        counts[side] += 1
    larger: Position = "A" if counts["A"] > counts["B"] else "B"
    excess = abs(counts["A"] - counts["B"])
    pool = sorted(p for p, side in chosen.items() if side == larger)
    dropped = rng.sample(pool, excess - excess % 2)  # leave the sides at most one apart
    for pair in dropped:
        del chosen[pair]
    return Balance(chosen=chosen, dropped=len(dropped))


#: Which incorrect judgments may be a DPO pair's rejected side, most preferred first.
REJECTED_ORDER: tuple[Reason, ...] = ("wrong", "both", "tie", "unparsable")


def has_preference(reasons: Sequence[Reason]) -> bool:
    """Whether samples classified as ``reasons`` hold a DPO preference: a kept one and an
    incorrect one. Under DPO an adaptive sampler can stop a prompt as soon as this holds."""
    return "kept" in reasons and any(r != "kept" for r in reasons)


@dataclass(frozen=True)
class Preference:
    """One DPO example's two judgments for the same judging prompt."""

    chosen: str
    rejected: str
    #: Why the rejected judgment is incorrect: "wrong", "both", "tie" or "unparsable".
    rejected_reason: Reason


def preference(
    judgments: Sequence[str], reasons: Sequence[Reason], *, rng: random.Random
) -> Preference | None:
    """A (chosen, rejected) choice from one prompt's samples, or None without both kinds.

    ``reasons`` are :func:`classify`'s verdicts for ``judgments``, position by position. The
    chosen side is a random kept judgment; the rejected side a random one of the most
    preferred incorrect kind present (:data:`REJECTED_ORDER`).
    """
    if len(judgments) != len(reasons):
        raise ValueError(f"{len(judgments)} judgments but {len(reasons)} reasons")
    if not has_preference(reasons):
        return None
    chosen = [j for j, r in zip(judgments, reasons, strict=True) if r == "kept"]
    for reason in REJECTED_ORDER:
        rejected = [j for j, r in zip(judgments, reasons, strict=True) if r == reason]
        if rejected:
            return Preference(rng.choice(chosen), rng.choice(rejected), reason)
    return None  # unreachable: has_preference found a non-kept reason
