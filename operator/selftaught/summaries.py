"""What a stage attempt reports back: one declared model per stage, next to the task it got.

A stage's ``run`` returns its summary model (:class:`SelectSummary`, ... :class:`EvaluateSummary`);
the worker shell (:mod:`selftaught.worker`) adds who and how long (:class:`Summary`'s fields),
serialises it with camelCase keys and compacts it into the pod's termination message (< 4 KiB);
the controller (:mod:`selftaught.controller.observe`) and the local runner parse each message
once, with :func:`parse`, into the same model, and the planner reads attributes. Adding a
counter is a field here and the line of the stage that fills it (plus wherever it is surfaced).

Why every counter has a default: the worker may drop the largest detail fields to fit the
4 KiB message (listing them under ``truncated``), and a worker of another version may omit or
add fields. A summary must still parse; unknown keys are ignored for the same reason.

The discriminator is ``stage``. A message without it (an older worker, a hand-written test
fixture) takes the stage of the Job it came from; a message naming another stage is refused.

Pure: pydantic only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.alias_generators import to_camel

from selftaught.phases import Stage


class SetScores(BaseModel):
    """Scores of one judge on one evaluation set.

    For a complete RewardBench set scored ``official``, accuracy is RewardBench's overall score
    (the mean of Chat, Chat Hard, Safety and Reasoning). A ``partial`` set's accuracy is only the
    mean of the sections present: not a RewardBench score.
    """

    # The same settings as api.Model: this type is also part of the run's status schema.
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    accuracy: float = Field(
        description="Pairwise accuracy (0-1): the mean of the section scores present; "
        "unparsable verdicts count 0.5. RewardBench's overall only when scoring is official "
        "and partial is false."
    )
    examples: int = Field(default=0, description="Examples (rows) scored.")
    position_consistency: float | None = Field(
        default=None, description="Share of examples judged the same in both A/B orders."
    )
    invalid: int = Field(
        default=0, description="Examples where no sample gave a parsable verdict (count 0.5)."
    )
    ties: int = Field(
        default=0, description="Judgments that declared a tie ([[C]]); scored as 0.5."
    )
    sections: dict[str, float] = Field(
        default_factory=dict,
        description="Section scores present (RewardBench's Chat, Chat Hard, Safety, Reasoning; "
        "other subsets are sections of their own).",
    )
    scoring: Literal["official", "lenient"] = Field(
        default="lenient",
        description="official: RewardBench's generative parsing, vote and section weights; "
        "lenient: the project's last-marker parser, the documented choice for the held-out "
        "synthetic pairs (comparable across this project's runs only).",
    )
    partial: bool = Field(
        default=False,
        description="True when the set holds RewardBench subsets but not all of RewardBench "
        "(a section or subset missing, or fewer rows than rowsExpected): accuracy is then the "
        "mean of the sections present, not a RewardBench score.",
    )
    rows_expected: int | None = Field(
        default=None,
        description="Rows of the full RewardBench set (2985) when the set holds any "
        "RewardBench subset; compare with examples.",
    )
    sections_missing: list[str] = Field(
        default_factory=list, description="RewardBench sections with no row in this set."
    )

    def dump(self) -> dict[str, Any]:
        """The wire form, as api.Model's: camelCase keys, no unset optionals."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Summary(BaseModel):
    """What every report of a stage attempt carries; alone, it is a failed attempt's report.

    The worker shell fills these fields, not the stage.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        serialize_by_alias=True,  # the local runner's result.json keeps the wire's keys
        extra="ignore",
    )

    stage: Stage
    #: Which attempt this is (from the task): iteration, completion index, retry number.
    iteration: int | None = None
    shard: int | None = None
    attempt: int | None = None
    #: Wall seconds of the worker process, task parsing to report.
    seconds: float | None = None
    #: Seconds inside model compute (generation, training steps): the rest is overhead.
    compute_seconds: float | None = None
    #: A failed attempt only: the message (what to fix) and the exception's class name.
    error: str | None = None
    error_type: str | None = None
    #: Set by compaction: the detail fields dropped to fit 4 KiB (True: only the identity kept).
    truncated: list[str] | bool | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON form: camelCase keys, unset optionals left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class SelectSummary(Summary):
    """Step 1: instructions selected from the pool."""

    stage: Literal[Stage.SELECT] = Stage.SELECT
    #: Instructions kept, both splits.
    instructions: int = 0
    #: Of those, held out for evaluation.
    heldout: int = 0
    #: Pool lines without a usable instruction, and the first of their line numbers.
    bad_lines: int = 0
    bad_line_numbers: list[int] | None = None
    #: Pool lines read.
    read: int = 0
    #: Instructions whose prompts cannot fit the model's context with the tokens to generate:
    #: dropped here, before any GPU time; and the first of their line numbers.
    skipped_too_long: int = 0
    too_long_line_numbers: list[int] | None = None


class PairsSummary(Summary):
    """Step 2: contrasting pairs made by one shard."""

    stage: Literal[Stage.PAIRS] = Stage.PAIRS
    #: Training pairs made.
    pairs: int = 0
    #: Held-out pairs made.
    heldout_pairs: int = 0
    #: Instructions whose pair was unusable, in total and by reason (empty, same-answer, ...).
    failed: int = 0
    failures: dict[str, int] = Field(default_factory=dict)


class JudgeSummary(Summary):
    """Step 3: one shard's judgments (rejection sampling)."""

    stage: Literal[Stage.JUDGE] = Stage.JUDGE
    #: Pairs this shard judged.
    pairs: int = 0
    #: Judgments sampled (pairs x samplesPerPair with sampling: fixed; fewer when adaptive).
    sampled: int = 0
    #: Tokens the engine generated for those judgments (end tokens included).
    generated_tokens: int = 0
    #: Engine calls made (sampling rounds; 1 with sampling: fixed).
    rounds: int = 0
    #: Judgments kept: one correct judgment per pair that got any.
    kept: int = 0
    #: Sampled judgments without a parsable verdict (RewardBench's official reading).
    invalid: int = 0
    #: Samples rejected because they name both verdicts, declare a tie, or pick the loser.
    both_markers: int = 0
    ties: int = 0
    wrong: int = 0
    #: Kept judgments by the winner's position, after balancing (judging.bothOrders).
    kept_winner_a: int = 0
    kept_winner_b: int = 0
    #: Correct judgments dropped to balance the kept A-better / B-better counts.
    dropped_for_balance: int = 0
    #: Pairs whose prompt + judging.maxNewTokens exceed the model's context: skipped, counted.
    skipped_too_long: int = 0
    #: DPO: pairs with a correct judgment but no incorrect one for the same prompt (dropped).
    dropped_without_rejected: int = 0
    #: DPO: kept rows whose rejected side is a two-marker, tie or unparsable judgment.
    rejected_not_wrong: int = 0


class TrainSummary(Summary):
    """Step 4: the fine-tuning of the next judge."""

    stage: Literal[Stage.TRAIN] = Stage.TRAIN
    #: Mean training loss (None: not reported).
    loss: float | None = None
    #: Training examples (kept judgments) and optimizer steps.
    examples: int = 0
    steps: int = 0
    #: Training processes (the world size).
    ranks: int = 1
    #: FSDP sharded the model; the bytes of parameters and optimizer state rank 0 held at the
    #: end of training, measured on its tensors (about 1/ranks of the whole when sharded).
    sharded: bool = False
    rank_parameter_bytes: int = 0
    rank_optimizer_bytes: int = 0
    #: URI of the trained judge.
    model: str | None = None
    #: sft or dpo (training.method).
    method: Literal["sft", "dpo"] = "sft"
    #: DPO: TRL's logged rewards/margins and rewards/accuracies at the last training step.
    reward_margin: float | None = None
    reward_accuracy: float | None = None


class EvaluateSummary(Summary):
    """Step 5: a judge's scores."""

    stage: Literal[Stage.EVALUATE] = Stage.EVALUATE
    #: Scores per evaluation set (heldout, heldout-seen/-unseen, each dataset by name).
    scores: dict[str, SetScores] = Field(default_factory=dict)
    #: Compact-style judges: the share of judgments whose verdict their reasoning implies.
    reasoning_agreement: float | None = None
    #: Things the user should look at (low position consistency, bad dataset lines, ...).
    warnings: list[str] | None = None
    #: Examples per set left out because their judging prompt cannot fit the context.
    skipped_too_long: dict[str, int] = Field(default_factory=dict)


#: Any stage's summary, told apart by ``stage``.
StageSummary = Annotated[
    SelectSummary | PairsSummary | JudgeSummary | TrainSummary | EvaluateSummary,
    Field(discriminator="stage"),
]
_ADAPTER: TypeAdapter[StageSummary] = TypeAdapter(StageSummary)

#: The summary model of each stage.
MODELS: dict[Stage, type[Summary]] = {
    Stage.SELECT: SelectSummary,
    Stage.PAIRS: PairsSummary,
    Stage.JUDGE: JudgeSummary,
    Stage.TRAIN: TrainSummary,
    Stage.EVALUATE: EvaluateSummary,
}


class BadSummary(ValueError):
    """A report that is not a summary of the stage it came from; the message says why."""


def parse(stage: Stage, data: Mapping[str, Any] | Summary) -> StageSummary:
    """``data`` (a parsed termination message) as ``stage``'s summary; :class:`BadSummary` if not.

    A message without ``stage`` is taken to be the Job's own stage.
    """
    if isinstance(data, Summary):
        data = data.to_wire()
    if not isinstance(data, Mapping):
        raise BadSummary(f"a {stage} summary must be a JSON object, not {type(data).__name__}")
    named = data.get("stage", Stage(stage).value)
    if named != Stage(stage).value:
        raise BadSummary(f"a summary of stage {named!r} came from a {stage} Job")
    try:
        return _ADAPTER.validate_python({**data, "stage": named})
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or '<root>'}: {e['msg']}"
            for e in error.errors()[:5]
        )
        raise BadSummary(f"not a valid {stage} summary: {problems}") from error


def parse_all(stage: Stage, found: Mapping[int, Any]) -> dict[int, Any]:
    """Each shard's summary as ``stage``'s model (see :func:`parse`); raises on a bad one.

    A value that already is that model is kept as it is: parsed once, where it arrived.
    """
    model = MODELS[Stage(stage)]
    return {
        int(shard): data if type(data) is model else parse(stage, data)
        for shard, data in found.items()
    }


_S = TypeVar("_S", bound=Summary)


def of_type(summaries: Iterable[Summary], kind: type[_S]) -> list[_S]:
    """The summaries that are ``kind``'s (a Job's are all of its stage's): typed for readers."""
    return [s for s in summaries if isinstance(s, kind)]
