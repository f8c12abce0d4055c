"""Step 3, every iteration: the current judge judges the training pairs (rejection sampling).

Each pair becomes a pairwise prompt with the winner in position A for exactly half of all
pairs (a seeded assignment over the whole training set, made before sharding, so the balance
holds globally and a retried shard reproduces it). With ``judging.bothOrders`` each pair is
judged in both orders instead and the kept set is balanced *after* rejection, per shard
(:func:`selftaught.rejection.balance_positions`). N judgments are sampled per pair and order
(``judging.sampling: fixed``, one engine call), or drawn in rounds of ``judging.roundSize`` until
the pair and order has a keepable judgment or has drawn N (``adaptive``,
:mod:`selftaught.rounds`: the same kept data in distribution, fewer tokens); a judgment is
correct when RewardBench's official reading names the known winner and the text names no other
verdict (both markers, a tie or a malformed marker are never kept:
:func:`selftaught.rejection.classify`); one correct judgment per pair is kept at random; pairs
without any are dropped.

Output (committed at the shard's prefix): ``judgments.jsonl`` in TRL's conversational
prompt/completion form, ``{"prompt": [user msg], "completion": [assistant msg], "pairId",
"winner"}``. With ``training.method: dpo`` a judging prompt is usable only when it got both a
kept and an incorrect judgment (:func:`selftaught.rejection.preference`: which incorrect ones
may be rejected), and each row is in TRL's conversational preference form instead,
``{"prompt", "chosen": [assistant msg], "rejected": [assistant msg], "rejectedReason",
"pairId", "winner"}``; balancing by position works the same over the usable prompts.

Summary (:class:`~selftaught.summaries.JudgeSummary`): ``pairs``, ``sampled``,
``generatedTokens``, ``rounds``,
``kept``, ``invalid`` (unparsable samples), ``bothMarkers``, ``ties``, ``wrong`` (samples
rejected for each reason), ``keptWinnerA`` / ``keptWinnerB`` (kept judgments by the winner's
position), ``droppedForBalance`` and ``skippedTooLong`` (pairs whose prompt cannot fit the
model's context with ``judging.maxNewTokens``: skipped by the engine, never a failed shard);
DPO adds ``droppedWithoutRejected`` (pairs with a correct judgment but no incorrect one beside
it) and ``rejectedNotWrong`` (rows whose rejected side is a two-marker, tie or unparsable
judgment rather than a wrong verdict).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from selftaught import prompts, rejection, rounds
from selftaught.artifacts import shard_prefix
from selftaught.phases import Stage
from selftaught.stages.common import generation_seed, mine, open_engine, read_shards, rng_for
from selftaught.stages.judging_prompts import JudgePrompts, judge_prompts, read_templates
from selftaught.storage import Storage
from selftaught.summaries import JudgeSummary
from selftaught.task import StageTask

#: One judging prompt's conversation, its sampled judgments and their classifications.
Judged = tuple[list[prompts.Message], list[str], list[rejection.Reason]]


def winner_positions(task: StageTask, count: int) -> list[str]:
    """Where the winner goes for each of ``count`` pairs: "A" for exactly half (seeded)."""
    if not task.spec.judging.balance_positions:
        rng = rng_for(task, "positions", task.iteration)
        return ["A" if rng.random() < 0.5 else "B" for _ in range(count)]
    positions = ["A"] * (count // 2) + ["B"] * (count - count // 2)
    rng_for(task, "positions", task.iteration).shuffle(positions)
    return positions


def render(judging: JudgePrompts, pair: dict[str, Any], winner: str) -> list[prompts.Message]:
    """The pair's judging prompt with the winner at ``winner`` (reference-guided if it has one)."""
    a, b = (
        (pair["chosen"], pair["rejected"]) if winner == "A" else (pair["rejected"], pair["chosen"])
    )
    return judging.render(pair["instruction"], a, b, pair.get("reference"))


def training_pairs(task: StageTask, storage: Storage) -> list[dict[str, Any]]:
    """Every committed training pair of the run, in a stable order."""
    rows = read_shards(storage, task, iteration=0, stage=Stage.PAIRS, name="pairs.jsonl")
    return sorted((r for r in rows if r["split"] == "train"), key=lambda r: int(r["id"]))


def orders_of(winner: str, *, both: bool) -> tuple[rejection.Position, ...]:
    """The winner positions a pair is judged in: its assigned one, then the other if ``both``."""
    first: rejection.Position = "A" if winner == "A" else "B"
    return (first, "B" if first == "A" else "A") if both else (first,)


def run(task: StageTask, storage: Storage, shard: int) -> JudgeSummary:
    pairs = training_pairs(task, storage)
    positions = winner_positions(task, len(pairs))
    spec = task.spec.judging
    share = [(p, positions[i]) for i, p in enumerate(pairs) if mine(i, shard, task.shards)]
    jobs = [
        (pair, winner)
        for pair, first in share
        for winner in orders_of(first, both=spec.both_orders)
    ]
    templates = read_templates(task)
    model = open_engine(task)
    judging = judge_prompts(model.style, templates)
    conversations = [render(judging, pair, winner) for pair, winner in jobs]
    engine = model.engine

    def generate(batch: list[int], n: int, seed: int) -> tuple[list[list[str]], int]:
        out = engine.generate(
            [conversations[i] for i in batch],
            n=n,
            temperature=spec.temperature,
            top_p=spec.top_p,
            max_new_tokens=spec.max_new_tokens,
            seed=seed,
        )
        return out, engine.last_generated_tokens

    dpo = task.spec.training.method == "dpo"

    def usable_now(job: int, judgments: list[str]) -> bool:
        """Adaptive rounds stop a prompt once it is usable: SFT needs a kept judgment, DPO a
        kept and an incorrect one (of this same prompt: chosen and rejected share it)."""
        verdicts = [rejection.classify(j, jobs[job][1]) for j in judgments]
        return rejection.has_preference(verdicts) if dpo else "kept" in verdicts

    drawn = rounds.sample_in_rounds(
        list(range(len(jobs))),
        generate=generate,
        done=usable_now,
        budget=spec.samples_per_pair,
        round_size=spec.round_size if spec.sampling == "adaptive" else spec.samples_per_pair,
        seed=generation_seed(task, shard),
    )
    samples = drawn.samples
    reasons: Counter[str] = Counter()
    usable: dict[int, dict[rejection.Position, Judged]] = {}
    too_long: set[int] = set()
    with_correct: set[int] = set()
    for (pair, winner), conversation, judgments in zip(jobs, conversations, samples, strict=True):
        if not judgments:  # the engine's verdict: prompt + maxNewTokens exceed the context
            too_long.add(int(pair["id"]))
            continue
        verdicts = [rejection.classify(j, winner) for j in judgments]
        reasons.update(verdicts)
        if "kept" in verdicts:
            with_correct.add(int(pair["id"]))
        if rejection.has_preference(verdicts) if dpo else "kept" in verdicts:
            usable.setdefault(int(pair["id"]), {})[winner] = (conversation, judgments, verdicts)
    # DPO: pairs with a correct judgment in some order but no incorrect one beside it.
    unpaired = len(with_correct - set(usable))
    if spec.both_orders:
        balance = rejection.balance_positions(
            {pid: list(found) for pid, found in usable.items()},
            rng=rng_for(task, "balance", task.iteration, shard),
        )
        chosen, dropped = balance.chosen, balance.dropped
    else:
        chosen = {pid: next(iter(found)) for pid, found in usable.items()}
        dropped = 0
    pick = rng_for(task, "pick", task.iteration, shard)
    kept = []
    for pair, _ in share:
        position = chosen.get(int(pair["id"]))
        if position is None:
            continue
        conversation, judgments, verdicts = usable[int(pair["id"])][position]
        row: dict[str, Any] = {"prompt": conversation}
        if dpo:
            choice = rejection.preference(judgments, verdicts, rng=pick)
            assert choice is not None  # usable only holds prompts with a preference
            row["chosen"] = [{"role": "assistant", "content": choice.chosen}]
            row["rejected"] = [{"role": "assistant", "content": choice.rejected}]
            row["rejectedReason"] = choice.rejected_reason
        else:
            correct = [j for j, v in zip(judgments, verdicts, strict=True) if v == "kept"]
            row["completion"] = [{"role": "assistant", "content": pick.choice(correct)}]
        kept.append({**row, "pairId": pair["id"], "winner": position})
    prefix = shard_prefix(task.namespace, task.run, task.iteration, Stage.JUDGE, shard)
    with storage.output(prefix) as out:
        out.write_jsonl("judgments.jsonl", kept)
    return JudgeSummary(
        pairs=len(share),
        sampled=drawn.drawn,
        generated_tokens=drawn.tokens,
        rounds=drawn.rounds,
        kept=len(kept),
        invalid=reasons["unparsable"],
        both_markers=reasons["both"],
        ties=reasons["tie"],
        wrong=reasons["wrong"],
        kept_winner_a=sum(1 for row in kept if row["winner"] == "A"),
        kept_winner_b=sum(1 for row in kept if row["winner"] == "B"),
        dropped_for_balance=dropped,
        skipped_too_long=len(too_long),
        dropped_without_rejected=unpaired,
        rejected_not_wrong=sum(1 for row in kept if row.get("rejectedReason", "wrong") != "wrong"),
    )
