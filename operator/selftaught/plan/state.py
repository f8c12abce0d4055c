"""The state one planning pass works on, and the primitives every policy shares. Pure.

A :class:`PassState` holds the run, the observed Jobs, the injected clock, a private copy of the
status and the :class:`~selftaught.plan.actions.Plan` being built. The policies (retry, resume,
best, suspend, absorb, immutable) are functions over it; the primitives here are the few moves
they all make: tell (an Event that also becomes the status message), set a condition, find an
iteration's record, enter a stage, end the run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from selftaught import artifacts, names
from selftaught.api import IterationRecord, RunSpec, RunStatus, SelfTaughtRun
from selftaught.conditions import rfc3339, set_condition
from selftaught.phases import ConditionType, Phase, Reason, Stage
from selftaught.plan.actions import Event, Plan
from selftaught.plan.observed import ObservedJob
from selftaught.policy import WorkloadPolicy

if TYPE_CHECKING:
    from selftaught.plan.rejected import CreateRejected


@dataclass
class PassState:
    """One pass's inputs and its work in progress; only ``status`` and ``out`` change."""

    run: SelfTaughtRun
    jobs: dict[str, ObservedJob]
    now: datetime
    status: RunStatus
    #: The create this pass would make was just refused by the API server (4xx), if any.
    rejected: CreateRejected | None = None
    #: The operator's workload policy (images, ServiceAccounts); the default allows all.
    policy: WorkloadPolicy = field(default_factory=WorkloadPolicy)
    #: What is wrong with the run's templates, as the operator read them before the start
    #: (a configmap:// key missing or with a bad placeholder), or None.
    template_problem: str | None = None
    out: Plan = field(init=False)

    def __post_init__(self) -> None:
        self.out = Plan(status=self.status)

    @classmethod
    def begin(
        cls,
        run: SelfTaughtRun,
        jobs: list[ObservedJob],
        now: datetime,
        *,
        rejected: CreateRejected | None = None,
        policy: WorkloadPolicy | None = None,
        template_problem: str | None = None,
    ) -> PassState:
        """A pass over a deep copy of the run's status: the caller's objects stay untouched."""
        status = run.status.model_copy(deep=True)
        jobs_by_name = {j.name: j for j in jobs}
        return cls(
            run, jobs_by_name, now, status, rejected, policy or WorkloadPolicy(), template_problem
        )

    @property
    def spec(self) -> RunSpec:
        return self.run.spec

    @property
    def phase(self) -> Phase:
        return Phase(self.status.phase)

    def event(self, kind: Literal["Normal", "Warning"], reason: Reason, message: str) -> None:
        """Queue an Event; its message is also the status' latest message."""
        self.out.events.append(Event(kind, str(reason), message))
        self.status.message = message

    def condition(self, kind: ConditionType, status: bool, reason: Reason, message: str) -> bool:
        """Set a condition for this generation; True when it changed (worth an Event)."""
        return set_condition(
            self.status.conditions,
            kind,
            status,
            reason=reason,
            message=message,
            generation=self.run.generation,
            now=self.now,
        )

    def record(self, iteration: int) -> IterationRecord:
        """The history record of ``iteration``, created (with any gap before it) on demand."""
        history = self.status.history
        while len(history) <= iteration:
            history.append(IterationRecord(iteration=len(history)))
        return history[iteration]

    def position(self) -> tuple[int, Stage, int]:
        """(iteration, stage, attempt) of a started run."""
        assert self.status.stage is not None
        return self.status.iteration, Stage(self.status.stage), self.status.attempt.number

    def current_name(self) -> str:
        iteration, stage, attempt = self.position()
        return names.job_name(self.run.name, iteration, stage, attempt)

    def model_of(self, iteration: int) -> str:
        """The judge of ``iteration``: the seed for 0, else the recorded or conventional URI."""
        if iteration == 0:
            return self.spec.seed_model
        recorded = self.record(iteration).model
        assert self.spec.storage is not None, "checked at start"
        return recorded or artifacts.join_uri(
            self.spec.storage.uri,
            artifacts.model_prefix(self.run.namespace, self.run.name, iteration),
        )

    def enter(self, iteration: int, stage: Stage) -> None:
        """Move to attempt 0 of ``stage`` with a fresh retry budget."""
        self.status.iteration = iteration
        self.status.stage = stage
        attempt = self.status.attempt
        attempt.number = attempt.failures = attempt.disruptions = 0
        attempt.not_before = attempt.last_failure = None
        self.status.stage_started_at = None
        record = self.record(iteration)
        record.started_at = record.started_at or rfc3339(self.now)

    def succeed(self, reason: Reason, message: str) -> None:
        self.status.phase = Phase.SUCCEEDED
        self.status.completed_at = rfc3339(self.now)
        self.condition(ConditionType.PROGRESSING, False, reason, message)
        self.condition(ConditionType.SUCCEEDED, True, reason, message)
        self.event("Normal", reason, message)

    def fail(self, reason: Reason, message: str) -> None:
        self.status.phase = Phase.FAILED
        self.status.completed_at = rfc3339(self.now)
        self.condition(ConditionType.PROGRESSING, False, reason, message)
        self.condition(ConditionType.FAILED, True, reason, message)
        self.event("Warning", reason, message)
