"""Step 5: measure a judge on held-out synthetic pairs and on RewardBench-format datasets.

Scored as RewardBench scores a generative judge (:mod:`selftaught.scoring`): a seeded A/B swap
per example, ``majorityVote`` samples whose majority verdict counts, unparsable = 0.5, scores
per section. RewardBench-format datasets use the ``official`` mode by default (RewardBench's
parsing order, its vote, its section weights; partial sets marked); the held-out synthetic pairs
use the ``lenient`` mode, this project's documented choice for its own prompt format. Every
example is also judged in the other order, for position consistency.

For the built-in task the held-out pairs are also scored by the warm start's split
(``heldout-seen`` / ``heldout-unseen``), so the loop's gain where the seed never saw a labelled
judgment is visible, and the stage checks that the judge's reasoning drives its verdict
(``reasoningAgreement``): the loop can only amplify a judge whose verdicts follow from its
reasoning, so a low value gets a warning.

Output (committed at ``stage_prefix(ns, run, i, evaluate)``): ``scores.json`` and
``judgments.jsonl`` (every example's verdicts). Summary
(:class:`~selftaught.summaries.EvaluateSummary`): ``scores`` per set, ``skippedTooLong``
(examples per set whose judging prompt cannot fit the model's context with
``evaluation.maxNewTokens``: left out of the scores and named in a warning, never a failed
stage), plus ``warnings`` and ``reasoningAgreement`` when they apply.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from selftaught import builtin, prompts, scoring
from selftaught.api import EvaluationSpec
from selftaught.artifacts import stage_prefix
from selftaught.phases import Stage
from selftaught.pod import BadInput
from selftaught.scoring import Mode
from selftaught.stages.common import LoadedModel, generation_seed, open_engine, read_shards
from selftaught.stages.judging_prompts import JudgePrompts, judge_prompts, read_templates
from selftaught.storage import Storage, StorageNotFound, open_object
from selftaught.summaries import EvaluateSummary, SetScores
from selftaught.task import StageTask

#: Below this share of judgments whose verdict follows their own reasoning, warn.
MIN_REASONING_AGREEMENT = 0.8
#: Below this position consistency, warn: the judge mostly follows the A/B position.
MIN_POSITION_CONSISTENCY = 0.6


@dataclass(frozen=True)
class Example:
    """One pairwise example: which answer is better is known."""

    prompt: str
    chosen: str
    rejected: str
    subset: str
    part: str | None = None  # built-in task only: "seen" / "unseen"
    reference: str | None = None  # a reference answer: reference-guided judging


def heldout_examples(task: StageTask, storage: Storage) -> list[Example]:
    rows = read_shards(storage, task, iteration=0, stage=Stage.PAIRS, name="pairs.jsonl")
    held = sorted((r for r in rows if r["split"] == "heldout"), key=lambda r: int(r["id"]))
    source = task.spec.instructions.source
    part_of = builtin.from_source(source).part_of if builtin.is_builtin(source) else None
    return [
        Example(
            r["instruction"],
            r["chosen"],
            r["rejected"],
            r.get("category") or "heldout",
            part_of(r["instruction"]) if part_of else None,
            r.get("reference"),
        )
        for r in held
    ]


def dataset_examples(task: StageTask, uri: str) -> tuple[list[Example], int]:
    """A RewardBench-format JSONL file's examples and its count of bad lines."""
    try:
        store, key = open_object(uri, storage_spec=task.spec.storage)
        lines = list(store.read_jsonl(key))
    except (ValueError, StorageNotFound) as error:
        raise BadInput(f"evaluation dataset {uri} cannot be read: {error}") from error
    found, bad = [], 0
    for _, row in lines:
        fields = (
            [row.get(k) for k in ("prompt", "chosen", "rejected")] if isinstance(row, dict) else []
        )
        if len(fields) == 3 and all(isinstance(f, str) and f.strip() for f in fields):
            prompt, chosen, rejected = (str(f) for f in fields)
            found.append(Example(prompt, chosen, rejected, str(row.get("subset") or "")))
        else:
            bad += 1
    if not found:
        raise BadInput(f"evaluation dataset {uri}: no usable line (needs prompt, chosen, rejected)")
    return found, bad


def sampling(spec: EvaluationSpec) -> tuple[float, float]:
    """(temperature, top-p): the single judgment's, or the majority vote's own pair."""
    if spec.majority_vote > 1:
        return spec.vote_temperature, spec.vote_top_p
    return spec.temperature, 1.0


def example_result(
    subset: str, main: Sequence[str], swapped: Sequence[str], chosen_is_a: bool, mode: Mode
) -> scoring.ExampleResult:
    """Score the seeded order's samples; the swapped order's only decide consistency."""
    if mode == "official":
        outcomes = [scoring.official_verdict(s) for s in main]
        score = scoring.official_example_score(outcomes, chosen_is_a)
        other = scoring.official_example_score(
            [scoring.official_verdict(s) for s in swapped], not chosen_is_a
        )
        invalid = all(o not in ("A", "B") for o in outcomes)
        ties = outcomes.count("tie")
    else:
        verdicts = [prompts.parse_verdict(s) for s in main]
        score = scoring.example_score(verdicts, chosen_is_a)
        other = scoring.example_score([prompts.parse_verdict(s) for s in swapped], not chosen_is_a)
        invalid, ties = all(v is None for v in verdicts), 0
    return scoring.ExampleResult(
        subset=subset,
        score=score,
        invalid=invalid,
        consistent=score == other and score != 0.5,
        ties=ties,
    )


def judge_both_orders(
    task: StageTask,
    model: LoadedModel,
    examples: Sequence[Example],
    seed: int,
    mode: Mode = "lenient",
    *,
    judging: JudgePrompts | None = None,
) -> tuple[list[tuple[Example, scoring.ExampleResult, list[str]]], int]:
    """Each example judged with the seeded order and with the swapped one; and the count of
    examples left out because a prompt of theirs cannot fit the context (no samples)."""
    spec = task.spec.evaluation
    temperature, top_p = sampling(spec)
    base = task.spec.worker.seed
    orders = [scoring.ab_order(base, i) for i in range(len(examples))]
    judging = judging or JudgePrompts(model.style)
    conversations = []
    for example, chosen_is_a in zip(examples, orders, strict=True):
        for first in (chosen_is_a, not chosen_is_a):
            a, b = (
                (example.chosen, example.rejected) if first else (example.rejected, example.chosen)
            )
            conversations.append(judging.render(example.prompt, a, b, example.reference))
    samples = model.engine.generate(
        conversations,
        n=spec.majority_vote,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=spec.max_new_tokens,
        seed=seed,
    )
    results, too_long = [], 0
    for i, (example, chosen_is_a) in enumerate(zip(examples, orders, strict=True)):
        main, swapped = samples[2 * i], samples[2 * i + 1]
        if not main or not swapped:
            too_long += 1
            continue
        result = example_result(example.subset, main, swapped, chosen_is_a, mode)
        results.append((example, result, main))
    return results, too_long


def partial_warning(name: str, scores: dict[str, Any]) -> str:
    """Say plainly that a partial RewardBench set's accuracy is not a RewardBench score."""
    missing = ", ".join(scores["sectionsMissing"]) or "none"
    return (
        f"dataset {name}: partial RewardBench set ({scores['examples']}/{scores['rowsExpected']} "
        f"rows, sections missing: {missing}): its accuracy is the mean of the sections present, "
        "not a RewardBench score"
    )


def reasoning_agreement(judgments: Sequence[str]) -> float | None:
    """Share of compact judgments whose stated verdict is the one their reasoning implies."""
    implied_verdict = builtin.lookup(builtin.COMPACT_STYLE_TASK).implied_verdict
    if not judgments:
        return None
    agree = sum(
        1
        for j in judgments
        if implied_verdict(j) is not None and implied_verdict(j) == prompts.parse_verdict(j)
    )
    return agree / len(judgments)


def run(task: StageTask, storage: Storage, shard: int) -> EvaluateSummary:
    templates = read_templates(task)
    model = open_engine(task)
    judging = judge_prompts(model.style, templates)
    seed = generation_seed(task, shard)
    scores: dict[str, Any] = {}
    details: list[dict[str, Any]] = []
    warnings: list[str] = []
    extra: dict[str, Any] = {}

    skipped: dict[str, int] = {}
    judged, skipped["heldout"] = judge_both_orders(
        task, model, heldout_examples(task, storage), seed, judging=judging
    )
    scores["heldout"] = scoring.score_set([r for _, r, _ in judged])
    for part in ("seen", "unseen"):
        subset = [r for e, r, _ in judged if e.part == part]
        if subset:
            scores[f"heldout-{part}"] = scoring.score_set(subset)
    details += [
        {"set": "heldout", "prompt": e.prompt, "score": r.score, "judgments": j}
        for e, r, j in judged
    ]
    if model.style == "compact" and judged:
        agreement = reasoning_agreement([j[0] for _, _, j in judged])
        extra["reasoningAgreement"] = agreement
        if agreement is not None and agreement < MIN_REASONING_AGREEMENT:
            warnings.append(
                f"only {agreement:.0%} of held-out judgments state the verdict their own reasoning "
                "implies: the loop cannot amplify a judge whose reasoning does not drive its "
                "verdict"
            )

    for dataset in task.spec.evaluation.datasets:
        examples, bad = dataset_examples(task, dataset.uri)
        judged_set, skipped[dataset.name] = judge_both_orders(
            task, model, examples, seed, dataset.scoring, judging=judging
        )
        scores[dataset.name] = scoring.score_set([r for _, r, _ in judged_set], dataset.scoring)
        if bad:
            warnings.append(f"dataset {dataset.name}: {bad} bad line(s) skipped")
        if scores[dataset.name]["partial"]:
            warnings.append(partial_warning(dataset.name, scores[dataset.name]))
        details += [
            {"set": dataset.name, "prompt": e.prompt, "score": r.score, "judgments": j}
            for e, r, j in judged_set
        ]
    budget = task.spec.evaluation.max_new_tokens
    for name, count in skipped.items():
        if count:
            warnings.append(
                f"{name}: {count} example(s) skipped: the judging prompt does not fit the "
                f"model's context with evaluation.maxNewTokens={budget}"
            )

    for name, value in scores.items():
        consistency = value.get("positionConsistency")
        if consistency is not None and consistency < MIN_POSITION_CONSISTENCY and value["examples"]:
            warnings.append(
                f"{name}: position consistency {consistency:.0%}: verdicts follow A/B order"
            )
    prefix = stage_prefix(task.namespace, task.run, task.iteration, Stage.EVALUATE)
    with storage.output(prefix) as out:
        out.write_bytes("scores.json", json.dumps({"scores": scores, **extra}, indent=2).encode())
        out.write_jsonl("judgments.jsonl", details)
    return EvaluateSummary(
        scores={name: SetScores.model_validate(value) for name, value in scores.items()},
        reasoning_agreement=extra.get("reasoningAgreement"),
        warnings=warnings or None,
        skipped_too_long=skipped,
    )
