"""Step 2: contrasting pairs whose winner is known by construction (once per run, sharded).

For instruction x the model writes y_w (an answer to x). It then writes x', a similar but
different instruction, and answers it: that answer, y_l, is good for the wrong question, so y_w
beats y_l for x. The request for x' is ``pairs.template`` when set (placeholder
``{instruction}``), else the built-in prompt. Pairs are validated (non-empty texts, x' != x,
y_l != y_w) and failures counted, not fatal: a generator that fails on some instructions is normal.

Shard k takes the selected instructions with ``id % shards == k``. Output (committed at the
shard's prefix): ``pairs.jsonl`` with rows ``{"id", "instruction", "chosen", "rejected",
"otherInstruction", "split", "category"}``, plus the instruction's ``reference`` answer when
select found one (judge and evaluate then judge the pair reference-guided).
Summary (:class:`~selftaught.summaries.PairsSummary`): ``pairs`` (train), ``heldoutPairs``,
``failed``.
"""

from __future__ import annotations

from typing import Any

from selftaught import prompts
from selftaught.artifacts import shard_prefix
from selftaught.phases import Stage
from selftaught.stages.common import generation_seed, mine, open_engine, read_stage
from selftaught.stages.prompt_files import read_field, similar_prompt
from selftaught.storage import Storage
from selftaught.summaries import PairsSummary
from selftaught.task import StageTask


def failure(x: str, y_w: str, x2: str, y_l: str) -> str | None:
    """Why a generated pair is unusable, or None if it is fine."""
    if not (x.strip() and y_w.strip() and x2.strip() and y_l.strip()):
        return "empty"
    if prompts.normalise_text(x2) == prompts.normalise_text(x):
        return "same-instruction"
    if prompts.normalise_text(y_l) == prompts.normalise_text(y_w):
        return "same-answer"
    return None


def run(task: StageTask, storage: Storage, shard: int) -> PairsSummary:
    selected = read_stage(storage, task, iteration=0, stage=Stage.SELECT, name="instructions.jsonl")
    rows = [r for r in selected if mine(int(r["id"]), shard, task.shards)]
    spec = task.spec.pairs
    template = read_field(task, "spec.pairs.template")  # checked before the model loads
    model = open_engine(task)
    seed = generation_seed(task, shard)

    def generate(conversations: list[list[prompts.Message]], salt: int) -> list[str]:
        out = model.engine.generate(
            conversations,
            n=1,
            temperature=spec.temperature,
            top_p=spec.top_p,
            max_new_tokens=spec.max_new_tokens,
            seed=seed + salt,
        )
        # No sample: the prompt cannot fit the context (select drops most such instructions).
        return [samples[0] if samples else "" for samples in out]

    xs = [r["instruction"] for r in rows]
    winners = generate([prompts.answer_prompt(model.style, x) for x in xs], 0)
    others = generate([similar_prompt(model.style, template, x) for x in xs], 1)
    losers = generate([prompts.answer_prompt(model.style, x2) for x2 in others], 2)

    pairs: list[dict[str, Any]] = []
    failures: dict[str, int] = {}
    for row, y_w, x2, y_l in zip(rows, winners, others, losers, strict=True):
        why = failure(row["instruction"], y_w, x2, y_l)
        if why:
            failures[why] = failures.get(why, 0) + 1
            continue
        pairs.append(
            {
                "id": row["id"],
                "instruction": row["instruction"],
                "chosen": y_w,
                "rejected": y_l,
                "otherInstruction": x2,
                "split": row["split"],
                "category": row.get("category", ""),
                **({"reference": row["reference"]} if row.get("reference") else {}),
            }
        )
    prefix = shard_prefix(task.namespace, task.run, 0, Stage.PAIRS, shard)
    with storage.output(prefix) as out:
        out.write_jsonl("pairs.jsonl", pairs)
    return PairsSummary(
        pairs=sum(1 for p in pairs if p["split"] == "train"),
        heldout_pairs=sum(1 for p in pairs if p["split"] == "heldout"),
        failed=sum(failures.values()),
        failures=failures,
    )
