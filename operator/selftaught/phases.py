"""The vocabulary of a run: stages, phases, condition types and reasons.

Kept in one module so that the planner, the Job builder, the controller, the local runner and
the metrics all spell them the same way. Every enum is a ``str`` enum so its value is exactly
what lands in a manifest, a label or the status.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """A unit of work that runs as one Job (possibly Indexed, one pod per shard)."""

    SELECT = "select"
    PAIRS = "pairs"
    JUDGE = "judge"
    TRAIN = "train"
    EVALUATE = "evaluate"

    @property
    def shardable(self) -> bool:
        """Generation-heavy stages split their items across an Indexed Job's pods."""
        return self in (Stage.PAIRS, Stage.JUDGE)

    @property
    def once_per_run(self) -> bool:
        """Selection and pair construction happen in iteration 0 only."""
        return self in (Stage.SELECT, Stage.PAIRS)


#: The stages of iteration 0 (build the data once, then measure the seed as the baseline).
SETUP_STAGES: tuple[Stage, ...] = (Stage.SELECT, Stage.PAIRS, Stage.EVALUATE)
#: The stages of every later iteration.
LOOP_STAGES: tuple[Stage, ...] = (Stage.JUDGE, Stage.TRAIN, Stage.EVALUATE)


def stages_of(iteration: int) -> tuple[Stage, ...]:
    """The ordered stages of one iteration."""
    return SETUP_STAGES if iteration == 0 else LOOP_STAGES


class Phase(StrEnum):
    """The coarse state of a run, shown by ``kubectl get``."""

    PENDING = "Pending"
    RUNNING = "Running"
    SUSPENDED = "Suspended"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    def is_terminal(self) -> bool:
        return self in (Phase.SUCCEEDED, Phase.FAILED)


class ConditionType(StrEnum):
    """Kubernetes-style condition types kept in ``status.conditions``."""

    PROGRESSING = "Progressing"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    SUSPENDED = "Suspended"
    SPEC_ACCEPTED = "SpecAccepted"
    STALLED = "Stalled"
    #: spec.serve: True while a rolled-out Deployment serves the current best judge.
    SERVING = "Serving"


class Reason(StrEnum):
    """Machine-readable reasons for conditions and Events (CamelCase, as Kubernetes does)."""

    CREATED = "Created"
    STAGE_STARTED = "StageStarted"
    STAGE_SUCCEEDED = "StageSucceeded"
    STAGE_RETRYING = "StageRetrying"
    ITERATION_COMPLETED = "IterationCompleted"
    BEST_ITERATION = "BestIteration"
    EARLY_STOPPED = "EarlyStopped"
    #: The judge kept no judgment in an iteration: nothing to train on, the run stops early
    #: (Succeeded; see selftaught.plan.nothing_kept).
    NOTHING_KEPT = "NothingKept"
    COMPLETED = "Completed"
    SUSPENDED = "Suspended"
    RESUMED = "Resumed"
    RESUMED_FROM = "ResumedFrom"
    EXTENDED = "Extended"
    ACCEPTED = "Accepted"
    IMMUTABLE_FIELD_CHANGED = "ImmutableFieldChanged"
    # Failure classes of a stage attempt (see FailureClass).
    PROGRAM_ERROR = "ProgramError"
    BAD_INPUT = "BadInput"
    OUT_OF_MEMORY = "OOMKilled"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    DISRUPTED = "Disrupted"
    RETRIES_EXHAUSTED = "RetriesExhausted"
    UNSCHEDULABLE = "Unschedulable"
    IMAGE_PULL = "ImagePullBackOff"
    NOT_ADMITTED = "NotAdmitted"
    #: The capacity check: a stage needs more GPU memory than its cards have (no Job made).
    INSUFFICIENT_GPU_MEMORY = "InsufficientGPUMemory"
    #: The API server refused to create a stage's Job (4xx: invalid, forbidden, quota, ...).
    JOB_REJECTED = "JobRejected"
    #: The operator's workload policy forbids an image or ServiceAccount the run names.
    POLICY_DENIED = "PolicyDenied"
    # The Serving condition (spec.serve; see selftaught.plan.serving).
    #: Every replica runs the current best judge and at least one is ready.
    SERVING_READY = "Ready"
    #: The Deployment is rolling to a new judge (old replicas serve until new ones are ready).
    SERVING_ROLLING = "Rolling"
    #: No iteration has been evaluated yet: nothing to serve.
    NO_BEST_YET = "NoBestYet"
    #: spec.serve is unset: the server is removed.
    NOT_SERVING = "NotRequested"


class FailureClass(StrEnum):
    """Why a stage attempt failed, as the controller observed it.

    The class decides the planner's response: disruptions (eviction, preemption, node loss) are
    retried without consuming the retry budget; bad input is never retried (it would fail the
    same way); the rest are retried with backoff up to ``maxRetries``.
    """

    PROGRAM_ERROR = "ProgramError"
    BAD_INPUT = "BadInput"
    OUT_OF_MEMORY = "OOMKilled"
    DEADLINE_EXCEEDED = "DeadlineExceeded"
    DISRUPTED = "Disrupted"

    @property
    def consumes_retry(self) -> bool:
        return self is not FailureClass.DISRUPTED

    @property
    def retryable(self) -> bool:
        return self is not FailureClass.BAD_INPUT

    @property
    def reason(self) -> Reason:
        return Reason(self.value)


class JobState(StrEnum):
    """The state of one observed child Job, reduced to what the planner needs."""

    PENDING = "Pending"  # created, not yet running (or suspended by Kueue)
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    def is_terminal(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED)


#: Worker exit codes, a contract between the stages and the controller's failure classification.
EXIT_OK = 0
EXIT_PROGRAM_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_TRANSIENT = 3
