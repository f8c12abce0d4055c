"""Step 1: select instructions from an unlabeled pool.

Each instruction's category comes from the pool when it carries one (``categoryField``,
MT-Bench's ``category``), else from a model's label (``labelModel``, default the seed model,
asked with ``labelTemplate`` when set);
the stage keeps the requested categories, drops repeats of the same normalised text, caps the
count and sets a seeded held-out share aside. Bad pool lines are counted with their line
numbers (a pool of millions of scraped lines always has some); only a pool with no usable line
is bad input.

Instructions that could not go through the rest of the loop are dropped here, before any GPU
time is spent on them, and counted with their line numbers: those whose labelling prompt, or
whose judging prompt with two answers of ``pairs.maxNewTokens`` each, cannot fit the model's
context with the tokens to generate (``judging.maxNewTokens`` or ``evaluation.maxNewTokens``,
whichever is larger). The prompts measured are those the later stages send: the user's
``instructions.labelTemplate``, ``pairs.template`` and judging templates where set (a row with
a reference answer is measured with its reference-guided prompt). One long scraped
instruction would otherwise cost a judging shard its samples later (the engines skip it there
too, but by then it has taken a pair's place).

Output (committed at ``stage_prefix(ns, run, 0, select)``): ``instructions.jsonl`` with rows
``{"id", "instruction", "category", "split": "train" | "heldout"}``, plus ``reference`` when
the pool gave the instruction a reference answer (pairs carries it on to judge and evaluate).
Summary (:class:`~selftaught.summaries.SelectSummary`): ``instructions`` (kept, both splits),
``heldout`` (of those), ``badLines``, ``read``, ``skippedTooLong`` (with
``tooLongLineNumbers``, the first 20).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

from selftaught import builtin, prompts
from selftaught.artifacts import stage_prefix
from selftaught.engines.base import fits
from selftaught.phases import Stage
from selftaught.pod import BadInput
from selftaught.stages import pool
from selftaught.stages.common import LoadedModel, open_engine, rng_for
from selftaught.stages.judging_prompts import judge_prompts, read_templates
from selftaught.stages.prompt_files import label_prompt, read_field, similar_prompt
from selftaught.storage import Storage, StorageNotFound
from selftaught.summaries import SelectSummary
from selftaught.task import StageTask
from selftaught.templates import JudgeTemplate, PromptTemplate

#: Bad line numbers reported in the summary (the count is always complete).
MAX_REPORTED_LINES = pool.MAX_REPORTED_LINES
#: Tokens for one category label; labels are one or two words.
LABEL_TOKENS = 8


def read_pool(task: StageTask, storage: Storage) -> pool.Pool:
    """The pool the spec names (:mod:`selftaught.stages.pool`)."""
    return pool.read(task.spec.instructions, seed=task.spec.worker.seed, storage=task.spec.storage)


@dataclass(frozen=True)
class SelectPrompts:
    """The user's templates select renders (None: the built-in prompt), read when it starts."""

    label: PromptTemplate | None = None
    similar: PromptTemplate | None = None
    judging: tuple[JudgeTemplate | None, JudgeTemplate | None] = (None, None)

    @classmethod
    def read(cls, task: StageTask) -> SelectPrompts:
        """Every template the fit check and the labelling use, checked before a model loads."""
        return cls(
            label=read_field(task, "spec.instructions.labelTemplate"),
            similar=read_field(task, "spec.pairs.template"),
            judging=read_templates(task),
        )


def fit_the_context(
    task: StageTask,
    model: LoadedModel,
    rows: list[pool.PoolRow],
    templates: SelectPrompts | None = None,
) -> list[bool]:
    """For each instruction, whether every prompt the loop builds from it fits the model's
    context with its tokens to generate (see the module doc). The prompts measured are those
    the later stages really send: the user's templates where the spec sets them."""
    engine, style = model.engine, model.style
    context = engine.context_length
    if context is None:
        return [True] * len(rows)
    templates = templates or SelectPrompts()
    known = _known_categories(style, task.spec.instructions.categories)
    judging = judge_prompts(style, templates.judging)
    answers = 2 * task.spec.pairs.max_new_tokens
    verdict = max(task.spec.judging.max_new_tokens, task.spec.evaluation.max_new_tokens)
    labels = engine.prompt_lengths(
        [label_prompt(style, templates.label, r.text, known) for r in rows]
    )
    similar = engine.prompt_lengths(
        [similar_prompt(style, templates.similar, r.text) for r in rows]
    )
    judged = engine.prompt_lengths([judging.render(r.text, "", "", r.reference) for r in rows])
    pairs_budget = task.spec.pairs.max_new_tokens
    return [
        fits(a, LABEL_TOKENS, context)
        and fits(b, pairs_budget, context)
        and fits(c + answers, verdict, context)
        for a, b, c in zip(labels, similar, judged, strict=True)
    ]


def label(
    task: StageTask,
    model: LoadedModel,
    texts: list[str],
    template: PromptTemplate | None = None,
) -> list[str]:
    """The model's category for each instruction (greedy: labelling is not sampled), asked
    with ``instructions.labelTemplate`` when set."""
    if not texts:
        return []
    known = _known_categories(model.style, task.spec.instructions.categories)
    replies = model.engine.generate(
        [label_prompt(model.style, template, t, known) for t in texts],
        n=1,
        temperature=0.0,
        top_p=1.0,
        max_new_tokens=LABEL_TOKENS,
        seed=task.spec.worker.seed,
    )
    return [prompts.parse_category(r[0], known) for r in replies]


def categories_of(
    task: StageTask,
    model: LoadedModel,
    rows: list[pool.PoolRow],
    template: PromptTemplate | None = None,
) -> list[str]:
    """Each row's category: the pool's own where it has one, else a model's label
    (``instructions.labelModel`` when set, else the seed model already open)."""
    unlabelled = [r.text for r in rows if r.category is None]
    labels: list[str] = []
    if unlabelled:
        labeller = task.spec.instructions.label_model
        labeller_model = _open_labeller(task, labeller) if labeller else model
        labels = label(task, labeller_model, unlabelled, template)
    found = iter(labels)
    return [r.category if r.category is not None else next(found) for r in rows]


def _known_categories(style: prompts.Style, wanted: list[str]) -> list[str]:
    if style == "compact":
        return [*builtin.lookup(builtin.COMPACT_STYLE_TASK).categories, *wanted]
    return [*prompts.STANDARD_CATEGORIES, *wanted]


def _open_labeller(task: StageTask, uri: str) -> LoadedModel:
    try:
        return open_engine(task, uri)
    except (BadInput, StorageNotFound) as error:
        raise BadInput(f"instructions.labelModel {uri} cannot be loaded: {error}") from error


def choose(
    task: StageTask,
    texts: list[str],
    categories: list[str],
    references: list[str | None] | None = None,
) -> list[dict[str, Any]]:
    """Filter, deduplicate, cap and split; pure given the labels (the tests call it directly).

    Categories match ``instructions.categories`` case-insensitively and are written as the
    spec spells them; a row with a reference answer keeps it under ``reference``."""
    spec = task.spec.instructions
    wanted = {c.casefold(): c for c in spec.categories}
    refs = references if references is not None else [None] * len(texts)
    seen: set[str] = set()
    kept: list[tuple[str, str, str | None]] = []
    for text, category, reference in zip(texts, categories, refs, strict=True):
        spelled = wanted.get(category.casefold())
        if spelled is None:
            continue
        key = prompts.normalise_text(text)
        if spec.deduplicate and key in seen:
            continue
        seen.add(key)
        kept.append((text, spelled, reference))
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
            **({"reference": reference} if reference is not None else {}),
        }
        for i, (text, category, reference) in enumerate(kept)
    ]


def run(task: StageTask, storage: Storage, shard: int) -> SelectSummary:
    found = read_pool(task, storage)
    templates = SelectPrompts.read(task)  # a bad template fails before any model loads
    model = open_engine(task)
    fitting = fit_the_context(task, model, found.rows, templates)
    too_long = [r.line for r, ok in zip(found.rows, fitting, strict=True) if not ok]
    rows = [r for r, ok in zip(found.rows, fitting, strict=True) if ok]
    if not rows:
        raise BadInput(
            f"instructions.source {task.spec.instructions.source}: no instruction fits the "
            f"model's context of {model.engine.context_length} tokens with pairs.maxNewTokens "
            f"and judging.maxNewTokens ({len(too_long)} too long; lower maxNewTokens)"
        )
    categories = categories_of(task, model, rows, templates.label)
    texts, references = [r.text for r in rows], [r.reference for r in rows]
    rows_out = choose(task, texts, categories, references)
    if not rows_out:
        seen = sorted(set(categories))
        how = "the pool says" if all(r.category is not None for r in rows) else "labelled"
        raise BadInput(
            f"no instruction of categories {task.spec.instructions.categories} in "
            f"{task.spec.instructions.source} ({how}: {seen})"
        )
    with storage.output(stage_prefix(task.namespace, task.run, 0, Stage.SELECT)) as out:
        out.write_jsonl("instructions.jsonl", rows_out)
    if too_long:
        print(
            f"selftaught select: {len(too_long)} instruction(s) cannot fit the model's context "
            f"of {model.engine.context_length} tokens and were dropped; lines: "
            f"{too_long[:MAX_REPORTED_LINES]}",
            file=sys.stderr,
        )
    return SelectSummary(
        instructions=len(rows_out),
        heldout=sum(1 for r in rows_out if r["split"] == "heldout"),
        bad_lines=len(found.bad),
        bad_line_numbers=found.bad[:MAX_REPORTED_LINES] if found.bad else None,
        read=found.read,
        skipped_too_long=len(too_long),
        too_long_line_numbers=too_long[:MAX_REPORTED_LINES] if too_long else None,
    )
