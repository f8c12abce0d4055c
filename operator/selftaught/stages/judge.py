"""Step 3, every iteration: the current judge judges the training pairs (rejection sampling).

Each pair becomes a pairwise prompt with the winner in position A for exactly half of all
pairs (a seeded assignment over the whole training set, made before sharding, so the balance
holds globally and a retried shard reproduces it). N judgments are sampled per pair; those whose
final verdict names the known winner are correct; one correct judgment per pair is kept at
random; pairs without any are dropped.

Output (committed at the shard's prefix): ``judgments.jsonl`` in TRL's conversational
prompt/completion form, ``{"prompt": [user msg], "completion": [assistant msg], "pairId",
"winner"}``. Summary: ``pairs``, ``sampled``, ``kept``, ``invalid`` (unparsable samples),
``skippedTooLong`` (pairs whose prompt cannot fit the model's context with
``judging.maxNewTokens``: skipped by the engine, never a failed shard).
"""

from __future__ import annotations

from typing import Any

from selftaught import prompts
from selftaught.artifacts import shard_prefix
from selftaught.phases import Stage
from selftaught.stages.common import generation_seed, mine, open_engine, read_shards, rng_for
from selftaught.storage import Storage
from selftaught.task import StageTask


def winner_positions(task: StageTask, count: int) -> list[str]:
    """Where the winner goes for each of ``count`` pairs: "A" for exactly half (seeded)."""
    if not task.spec.judging.balance_positions:
        rng = rng_for(task, "positions", task.iteration)
        return ["A" if rng.random() < 0.5 else "B" for _ in range(count)]
    positions = ["A"] * (count // 2) + ["B"] * (count - count // 2)
    rng_for(task, "positions", task.iteration).shuffle(positions)
    return positions


def render(style: prompts.Style, pair: dict[str, Any], winner: str) -> list[prompts.Message]:
    a, b = (
        (pair["chosen"], pair["rejected"]) if winner == "A" else (pair["rejected"], pair["chosen"])
    )
    return prompts.judge_prompt(style, pair["instruction"], a, b)


def training_pairs(task: StageTask, storage: Storage) -> list[dict[str, Any]]:
    """Every committed training pair of the run, in a stable order."""
    rows = read_shards(storage, task, iteration=0, stage=Stage.PAIRS, name="pairs.jsonl")
    return sorted((r for r in rows if r["split"] == "train"), key=lambda r: int(r["id"]))


def run(task: StageTask, storage: Storage, shard: int) -> dict[str, Any]:
    pairs = training_pairs(task, storage)
    positions = winner_positions(task, len(pairs))
    share = [(i, p, positions[i]) for i, p in enumerate(pairs) if mine(i, shard, task.shards)]
    spec = task.spec.judging
    model = open_engine(task)
    conversations = [render(model.style, pair, winner) for _, pair, winner in share]
    samples = model.engine.generate(
        conversations,
        n=spec.samples_per_pair,
        temperature=spec.temperature,
        top_p=spec.top_p,
        max_new_tokens=spec.max_new_tokens,
        seed=generation_seed(task, shard),
    )
    pick = rng_for(task, "pick", task.iteration, shard)
    kept, invalid, too_long = [], 0, 0
    for (_, pair, winner), conversation, judgments in zip(
        share, conversations, samples, strict=True
    ):
        if not judgments:  # the engine's verdict: prompt + maxNewTokens exceed the context
            too_long += 1
            continue
        verdicts = [prompts.parse_verdict(j) for j in judgments]
        invalid += sum(1 for v in verdicts if v is None)
        correct = [j for j, v in zip(judgments, verdicts, strict=True) if v == winner]
        if not correct:
            continue
        kept.append(
            {
                "prompt": conversation,
                "completion": [{"role": "assistant", "content": pick.choice(correct)}],
                "pairId": pair["id"],
                "winner": winner,
            }
        )
    prefix = shard_prefix(task.namespace, task.run, task.iteration, Stage.JUDGE, shard)
    with storage.output(prefix) as out:
        out.write_jsonl("judgments.jsonl", kept)
    return {
        "pairs": len(share),
        "sampled": (len(share) - too_long) * spec.samples_per_pair,
        "kept": len(kept),
        "invalid": invalid,
        "skippedTooLong": too_long,
    }
