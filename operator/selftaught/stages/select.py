"""Step 1: select instructions from an unlabeled pool.

The current model labels each instruction's category; the stage keeps the requested categories,
drops repeats of the same normalised text, caps the count and sets a seeded held-out share
aside. Bad pool lines are counted with their line numbers (a pool of millions of scraped lines
always has some); only a pool with no usable line is bad input.

Instructions that could not go through the rest of the loop are dropped here, before any GPU
time is spent on them, and counted with their line numbers: those whose labelling prompt, or
whose judging prompt with two answers of ``pairs.maxNewTokens`` each, cannot fit the model's
context with the tokens to generate (``judging.maxNewTokens`` or ``evaluation.maxNewTokens``,
whichever is larger). One long scraped instruction would otherwise cost a judging shard its
samples later (the engines skip it there too, but by then it has taken a pair's place).

Output (committed at ``stage_prefix(ns, run, 0, select)``): ``instructions.jsonl`` with rows
``{"id", "instruction", "category", "split": "train" | "heldout"}``.
Summary (:class:`~selftaught.summaries.SelectSummary`): ``instructions`` (kept, both splits),
``heldout`` (of those), ``badLines``, ``read``, ``skippedTooLong`` (with
``tooLongLineNumbers``, the first 20).
"""

from __future__ import annotations

import sys
from typing import Any

from selftaught import builtin, prompts
from selftaught.artifacts import stage_prefix
from selftaught.engines.base import fits
from selftaught.phases import Stage
from selftaught.pod import BadInput
from selftaught.stages.common import LoadedModel, open_engine, rng_for
from selftaught.storage import Storage, StorageNotFound, open_object
from selftaught.summaries import SelectSummary
from selftaught.task import StageTask

#: Bad line numbers reported in the summary (the count is always complete).
MAX_REPORTED_LINES = 20
#: Tokens for one category label; labels are one or two words.
LABEL_TOKENS = 8


def read_pool(task: StageTask, storage: Storage) -> tuple[list[str], list[int], list[int], int]:
    """Instructions of the pool, their line numbers, the line numbers of bad lines, and the
    lines read."""
    source = task.spec.instructions.source
    if builtin.is_builtin(source):
        try:
            found = builtin.from_source(source)
        except builtin.UnknownBuiltin:
            known = ", ".join(builtin.known())
            raise BadInput(
                f"instructions.source {source}: unknown built-in pool (try {known})"
            ) from None
        pool = found.pool(seed=task.spec.worker.seed, size=builtin.BUILTIN_POOL_SIZE)
        return pool, list(range(1, len(pool) + 1)), [], len(pool)
    field = task.spec.instructions.field
    try:
        store, key = open_object(source, storage_spec=task.spec.storage)
        lines = list(store.read_jsonl(key))
    except ValueError as error:
        raise BadInput(f"instructions.source {source}: {error}") from error
    except StorageNotFound as error:
        raise BadInput(f"instructions.source {source} cannot be read: {error}") from error
    texts, numbers, bad = [], [], []
    for line_no, row in lines:
        text = row.get(field) if isinstance(row, dict) else None
        if isinstance(text, str) and text.strip():
            texts.append(text.strip())
            numbers.append(line_no)
        else:
            bad.append(line_no)
    if not texts:
        raise BadInput(
            f"instructions.source {source}: no usable line ({len(bad)} bad; each needs a "
            f"non-empty string under {field!r}; first bad lines: {bad[:MAX_REPORTED_LINES]})"
        )
    return texts, numbers, bad, len(lines)


def fit_the_context(task: StageTask, model: LoadedModel, texts: list[str]) -> list[bool]:
    """For each instruction, whether every prompt the loop builds from it fits the model's
    context with its tokens to generate (see the module doc)."""
    engine, style = model.engine, model.style
    context = engine.context_length
    if context is None:
        return [True] * len(texts)
    answers = 2 * task.spec.pairs.max_new_tokens
    verdict = max(task.spec.judging.max_new_tokens, task.spec.evaluation.max_new_tokens)
    labels = engine.prompt_lengths([prompts.category_prompt(style, t) for t in texts])
    similar = engine.prompt_lengths([prompts.similar_prompt(style, t) for t in texts])
    judging = engine.prompt_lengths([prompts.judge_prompt(style, t, "", "") for t in texts])
    pairs_budget = task.spec.pairs.max_new_tokens
    return [
        fits(a, LABEL_TOKENS, context)
        and fits(b, pairs_budget, context)
        and fits(c + answers, verdict, context)
        for a, b, c in zip(labels, similar, judging, strict=True)
    ]


def label(task: StageTask, model: LoadedModel, texts: list[str]) -> list[str]:
    """The model's category for each instruction (greedy: labelling is not sampled)."""
    known = _known_categories(model.style, task.spec.instructions.categories)
    replies = model.engine.generate(
        [prompts.category_prompt(model.style, t) for t in texts],
        n=1,
        temperature=0.0,
        top_p=1.0,
        max_new_tokens=LABEL_TOKENS,
        seed=task.spec.worker.seed,
    )
    return [prompts.parse_category(r[0], known) for r in replies]


def _known_categories(style: prompts.Style, wanted: list[str]) -> list[str]:
    if style == "compact":
        return [*builtin.lookup(builtin.COMPACT_STYLE_TASK).categories, *wanted]
    return [*prompts.STANDARD_CATEGORIES, *wanted]


def choose(task: StageTask, texts: list[str], categories: list[str]) -> list[dict[str, Any]]:
    """Filter, deduplicate, cap and split; pure given the labels (the tests call it directly)."""
    spec = task.spec.instructions
    wanted = set(spec.categories)
    seen: set[str] = set()
    kept: list[tuple[str, str]] = []
    for text, category in zip(texts, categories, strict=True):
        if category not in wanted:
            continue
        key = prompts.normalise_text(text)
        if spec.deduplicate and key in seen:
            continue
        seen.add(key)
        kept.append((text, category))
    rng = rng_for(task, "select")
    rng.shuffle(kept)
    kept = kept[: spec.max_instructions]
    heldout = round(len(kept) * task.spec.evaluation.held_out_fraction) if len(kept) > 1 else 0
    heldout = max(heldout, 1) if len(kept) > 1 else 0
    return [
        {
            "id": i,
            "instruction": text,
            "category": category,
            "split": "heldout" if i < heldout else "train",
        }
        for i, (text, category) in enumerate(kept)
    ]


def run(task: StageTask, storage: Storage, shard: int) -> SelectSummary:
    texts, numbers, bad, read = read_pool(task, storage)
    model = open_engine(task)
    fitting = fit_the_context(task, model, texts)
    too_long = [n for n, ok in zip(numbers, fitting, strict=True) if not ok]
    texts = [t for t, ok in zip(texts, fitting, strict=True) if ok]
    if not texts:
        raise BadInput(
            f"instructions.source {task.spec.instructions.source}: no instruction fits the "
            f"model's context of {model.engine.context_length} tokens with pairs.maxNewTokens "
            f"and judging.maxNewTokens ({len(too_long)} too long; lower maxNewTokens)"
        )
    categories = label(task, model, texts)
    rows = choose(task, texts, categories)
    if not rows:
        found = sorted(set(categories))
        raise BadInput(
            f"no instruction of categories {task.spec.instructions.categories} in "
            f"{task.spec.instructions.source} (the model labelled: {found})"
        )
    with storage.output(stage_prefix(task.namespace, task.run, 0, Stage.SELECT)) as out:
        out.write_jsonl("instructions.jsonl", rows)
    if too_long:
        print(
            f"selftaught select: {len(too_long)} instruction(s) cannot fit the model's context "
            f"of {model.engine.context_length} tokens and were dropped; lines: "
            f"{too_long[:MAX_REPORTED_LINES]}",
            file=sys.stderr,
        )
    return SelectSummary(
        instructions=len(rows),
        heldout=sum(1 for r in rows if r["split"] == "heldout"),
        bad_lines=len(bad),
        bad_line_numbers=bad[:MAX_REPORTED_LINES] if bad else None,
        read=read,
        skipped_too_long=len(too_long),
        too_long_line_numbers=too_long[:MAX_REPORTED_LINES] if too_long else None,
    )
