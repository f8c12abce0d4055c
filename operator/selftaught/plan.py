"""The planner: (run, observed child Jobs, now) -> (actions, new status). Pure, no I/O.

Everything the operator and the embedded runner decide is decided here, so both behave the
same and every transition is a table-driven test away. The caller observes once, calls
:func:`plan`, applies the actions (create a Job whose name already exists = success), writes the
status once if it changed, and only then emits the events.

The run's position is ``(iteration, stage, attempt)`` in the status. A child Job's name is a
function of that position, so re-planning from the same observations yields the same actions
and the same status (a fixed point): a restarted operator converges, never duplicates.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from selftaught import artifacts, names
from selftaught.api import IterationRecord, ObservedJob, RunStatus, SelfTaughtRun, SetScores
from selftaught.conditions import find, parse_time, rfc3339, set_condition
from selftaught.phases import (
    ConditionType,
    FailureClass,
    JobState,
    Phase,
    Reason,
    Stage,
    stages_of,
)
from selftaught.task import StageTask

#: Retry backoff: base * 2**(failures-1), capped. Seconds.
BACKOFF_BASE_SECONDS = 10.0
BACKOFF_CAP_SECONDS = 300.0


@dataclass(frozen=True)
class CreateJob:
    """Create the Job for one stage attempt (an existing one of this name is success)."""

    name: str
    task: StageTask


@dataclass(frozen=True)
class DeleteJob:
    """Delete a child Job that no longer belongs to the run's position (stale or stuck)."""

    name: str
    reason: str


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event on the run, sent after the status write succeeded."""

    type: Literal["Normal", "Warning"]
    reason: str
    message: str


Action = CreateJob | DeleteJob


@dataclass
class Plan:
    actions: list[Action] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    status: RunStatus = field(default_factory=RunStatus)
    #: Seconds after which the caller should plan again even without a new observation.
    requeue_after: float | None = None

    @property
    def creates(self) -> list[CreateJob]:
        return [a for a in self.actions if isinstance(a, CreateJob)]

    @property
    def deletes(self) -> list[DeleteJob]:
        return [a for a in self.actions if isinstance(a, DeleteJob)]


def fingerprint(run: SelfTaughtRun) -> str:
    blob = json.dumps(run.spec.immutable_view(), sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def previous_stage(iteration: int, stage: Stage) -> tuple[int, Stage] | None:
    """The stage that runs just before (iteration, stage), or None at the very start."""
    order = stages_of(iteration)
    if stage in order and order.index(stage) > 0:
        return iteration, order[order.index(stage) - 1]
    if iteration == 0:
        return None
    return iteration - 1, stages_of(iteration - 1)[-1]


def paused_message(iteration: int, stage: Stage) -> str:
    """Where a suspended run paused: ``status.stage`` names the stage that starts on resume,
    so the message names the one that finished last (what a user means by "where")."""
    before = previous_stage(iteration, stage)
    nxt = f"iteration {iteration} {stage.value} starts on resume"
    if before is None:
        return f"suspended before the first stage; {nxt}"
    return f"suspended after iteration {before[0]} {before[1].value}; {nxt}"


def backoff(failures: int) -> float:
    return float(min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** max(0, failures - 1)))


class _Planner:
    """One planning pass. Mutates its own copy of the status, collects actions and events."""

    def __init__(self, run: SelfTaughtRun, jobs: list[ObservedJob], now: datetime) -> None:
        self.run = run
        self.spec = run.spec
        self.jobs = {j.name: j for j in jobs}
        self.now = now
        self.status = run.status.model_copy(deep=True)
        self.out = Plan(status=self.status)

    # ----------------------------------------------------------------------------- helpers

    def event(self, kind: Literal["Normal", "Warning"], reason: Reason, message: str) -> None:
        self.out.events.append(Event(kind, str(reason), message))
        self.status.message = message

    def condition(self, kind: ConditionType, status: bool, reason: Reason, message: str) -> bool:
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
        history = self.status.history
        while len(history) <= iteration:
            history.append(IterationRecord(iteration=len(history)))
        return history[iteration]

    def position(self) -> tuple[int, Stage, int]:
        assert self.status.stage is not None
        return self.status.iteration, Stage(self.status.stage), self.status.attempt.number

    def current_name(self) -> str:
        iteration, stage, attempt = self.position()
        return names.job_name(self.run.name, iteration, stage, attempt)

    def model_of(self, iteration: int) -> str:
        if iteration == 0:
            return self.spec.seed_model
        recorded = self.record(iteration).model
        assert self.spec.storage is not None, "checked at start"
        return recorded or artifacts.join_uri(
            self.spec.storage.uri,
            artifacts.model_prefix(self.run.namespace, self.run.name, iteration),
        )

    def task(self) -> StageTask:
        iteration, stage, attempt = self.position()
        init_model = None
        if stage is Stage.JUDGE:
            model = self.model_of(iteration - 1)
        elif stage is Stage.TRAIN:
            model = self.model_of(iteration - 1)
            init_model = (
                self.spec.seed_model
                if self.spec.training.init_from == "seed"
                else self.model_of(iteration - 1)
            )
        elif stage is Stage.EVALUATE:
            model = self.model_of(iteration)
        else:
            model = self.spec.seed_model
        resources = self.spec.stages.of(stage)
        return StageTask(
            run=self.run.name,
            namespace=self.run.namespace,
            iteration=iteration,
            stage=stage,
            attempt=attempt,
            shards=resources.shards if stage.shardable else 1,
            model=model,
            init_model=init_model,
            spec=self.spec,
        )

    # ------------------------------------------------------------------------- the passes

    def run_pass(self) -> Plan:
        self.status.iterations = self.spec.iterations
        if not self.check_immutable():
            return self.finish()
        self.apply_resume_from()
        self.maybe_extend()
        phase = Phase(self.status.phase)
        if phase is Phase.PENDING:
            self.start()
        if Phase(self.status.phase) in (Phase.RUNNING, Phase.SUSPENDED):
            self.advance()
        return self.finish()

    def check_immutable(self) -> bool:
        print_ = fingerprint(self.run)
        if self.status.spec_fingerprint is None:
            self.status.spec_fingerprint = print_
        if self.status.spec_fingerprint != print_:
            message = (
                "spec changes to seedModel, storage, instructions, pairs or "
                "evaluation.heldOutFraction are refused once a run has started; revert them or "
                "create a new run"
            )
            if self.condition(
                ConditionType.SPEC_ACCEPTED, False, Reason.IMMUTABLE_FIELD_CHANGED, message
            ):
                self.event("Warning", Reason.IMMUTABLE_FIELD_CHANGED, message)
            return False
        self.condition(ConditionType.SPEC_ACCEPTED, True, Reason.ACCEPTED, "spec accepted")
        self.status.observed_generation = self.run.generation
        return True

    def start(self) -> None:
        if self.spec.storage is None:
            self.fail(
                Reason.BAD_INPUT,
                "spec.storage is required on a cluster: set spec.storage.uri to s3://... or to "
                "file:///... with spec.storage.volumeClaim",
            )
            return
        self.status.phase = Phase.RUNNING
        self.status.iteration = 0
        self.status.stage = Stage.SELECT
        self.status.attempt.number = 0
        self.status.started_at = self.status.started_at or rfc3339(self.now)
        self.record(0).model = self.spec.seed_model
        self.record(0).started_at = rfc3339(self.now)
        self.event("Normal", Reason.CREATED, "run accepted; iteration 0 builds the data")

    def apply_resume_from(self) -> None:
        request = self.spec.resume_from
        if request is None:
            return
        key = f"{request.iteration}/{Stage(request.stage).value}"
        if key == self.status.applied_resume_from or self.status.stage is None:
            # Not started yet: a resumeFrom on a new run means nothing; remember it as applied.
            self.status.applied_resume_from = key
            return
        self.status.applied_resume_from = key
        iteration, stage = request.iteration, Stage(request.stage)
        if iteration > len(self.status.history):
            iteration, stage = len(self.status.history), Stage.JUDGE
        del self.status.history[iteration + 1 :]
        record = self.record(iteration)
        order = stages_of(iteration)
        for later in order[order.index(stage) :]:
            record.stage_seconds.pop(later.value, None)
            if later is Stage.EVALUATE:
                record.scores = {}
            if later is Stage.TRAIN and iteration > 0:
                record.training_loss = None
                record.model = None
            if later is Stage.JUDGE:
                record.judgments_sampled = record.judgments_kept = record.pairs = None
        record.completed_at = None
        # Fence on a fresh attempt number: older Jobs of that stage may still exist.
        seen = [
            j.attempt for j in self.jobs.values() if j.iteration == iteration and j.stage == stage
        ]
        # Jobs of the stages after it (and of later iterations) hold results from before the
        # resume; left in place, attempt 0 of those stages would be mistaken for a fresh run.
        later_stages = set(order[order.index(stage) + 1 :])
        for job in list(self.jobs.values()):
            if job.iteration > iteration or (
                job.iteration == iteration and job.stage in later_stages
            ):
                self.out.actions.append(DeleteJob(job.name, f"superseded by resumeFrom {key}"))
                del self.jobs[job.name]
        self.status.iteration, self.status.stage = iteration, stage
        self.status.attempt.number = max(seen, default=-1) + 1
        self.status.attempt.failures = self.status.attempt.disruptions = 0
        self.status.attempt.not_before = None
        self.status.stage_started_at = None
        self.status.completed_at = None
        self.status.phase = Phase.RUNNING
        self.update_best()
        for kind in (ConditionType.SUCCEEDED, ConditionType.FAILED):
            self.condition(kind, False, Reason.RESUMED_FROM, f"resumed from {key}")
        self.event("Normal", Reason.RESUMED_FROM, f"resuming from iteration {iteration}, {stage}")

    def maybe_extend(self) -> None:
        """Raising ``iterations`` on a run that finished all of them continues it."""
        done = len(self.status.history) - 1
        if (
            self.status.phase == Phase.SUCCEEDED
            and self.status.stage == Stage.EVALUATE
            and self.spec.iterations > done
            and not self.early_stopped()
        ):
            self.status.phase = Phase.RUNNING
            self.status.completed_at = None
            self.enter(done + 1, Stage.JUDGE)
            self.condition(ConditionType.SUCCEEDED, False, Reason.EXTENDED, "iterations raised")
            self.event("Normal", Reason.EXTENDED, f"iterations raised to {self.spec.iterations}")

    def enter(self, iteration: int, stage: Stage) -> None:
        self.status.iteration = iteration
        self.status.stage = stage
        self.status.attempt.number = 0
        self.status.attempt.failures = 0
        self.status.attempt.disruptions = 0
        self.status.attempt.not_before = None
        self.status.attempt.last_failure = None
        self.status.stage_started_at = None
        record = self.record(iteration)
        record.started_at = record.started_at or rfc3339(self.now)

    def advance(self) -> None:
        """Walk forward through every stage already finished, then start the current one."""
        for _ in range(4 * (self.spec.iterations + 2)):  # bounded: each step moves forward
            if Phase(self.status.phase).is_terminal():
                return
            name = self.current_name()
            job = self.jobs.get(name)
            if job is None:
                self.create_current(name)
                return
            if job.state is JobState.SUCCEEDED:
                self.absorb(job)
                self.next_stage()
                continue
            if job.state is JobState.FAILED:
                self.handle_failure(job)
                if Phase(self.status.phase) is Phase.RUNNING:
                    continue
                return
            self.watch_active(job)
            return

    def create_current(self, name: str) -> None:
        if self.spec.suspend:
            if self.status.phase != Phase.SUSPENDED:
                self.status.phase = Phase.SUSPENDED
                message = paused_message(*self.position()[:2])
                self.condition(ConditionType.SUSPENDED, True, Reason.SUSPENDED, message)
                self.event("Normal", Reason.SUSPENDED, message)
            return
        if self.status.phase == Phase.SUSPENDED:
            self.status.phase = Phase.RUNNING
            self.condition(ConditionType.SUSPENDED, False, Reason.RESUMED, "resumed")
            self.event("Normal", Reason.RESUMED, "resumed")
        not_before = parse_time(self.status.attempt.not_before)
        if not_before is not None and not_before > self.now:
            self.out.requeue_after = (not_before - self.now).total_seconds()
            return
        iteration, stage, attempt = self.position()
        if self.status.stage_started_at is None:
            self.status.stage_started_at = rfc3339(self.now)
            message = f"iteration {iteration}: {stage} started (attempt {attempt})"
            self.condition(ConditionType.PROGRESSING, True, Reason.STAGE_STARTED, message)
            self.event("Normal", Reason.STAGE_STARTED, message)
        self.out.actions.append(CreateJob(name=name, task=self.task()))

    def watch_active(self, job: ObservedJob) -> None:
        if job.stuck_reason:
            resources = self.spec.stages.of(job.stage)
            since = job.stuck_since or self.now
            waited = (self.now - since).total_seconds()
            message = f"Job {job.name} ({job.stage}): {job.stuck_reason}: {job.stuck_message or ''}"
            if self.condition(ConditionType.STALLED, True, Reason(job.stuck_reason), message):
                self.event("Warning", Reason(job.stuck_reason), message.strip())
            if waited >= resources.pending_timeout_seconds:
                self.out.actions.append(DeleteJob(job.name, "pending too long"))
                stuck = job.model_copy(
                    update={
                        "state": JobState.FAILED,
                        "failure": FailureClass.DEADLINE_EXCEEDED,
                        "failure_message": f"{job.stuck_reason} for {int(waited)}s",
                    }
                )
                self.handle_failure(stuck)
            else:
                self.out.requeue_after = resources.pending_timeout_seconds - waited
        else:  # only a recovery flips it: "select succeeded" stays until something is stuck,
            # so a Job going from pending to running costs no status write
            stalled = find(self.status.conditions, ConditionType.STALLED)
            if stalled is None or stalled.status == "True":
                self.condition(
                    ConditionType.STALLED, False, Reason.STAGE_STARTED, "making progress"
                )

    def absorb(self, job: ObservedJob) -> None:
        """Fold a succeeded stage's summaries into the iteration record."""
        iteration, stage, _ = self.position()
        record = self.record(iteration)
        summaries = [job.summaries[k] for k in sorted(job.summaries)]

        def total(key: str) -> int:
            return sum(int(s.get(key, 0)) for s in summaries)

        if stage is Stage.SELECT:
            record.instructions = total("instructions")
            record.heldout_instructions = total("heldout")
            record.bad_lines = total("badLines")
        elif stage is Stage.PAIRS:
            record.pairs = total("pairs")
        elif stage is Stage.JUDGE:
            record.pairs = total("pairs")
            record.judgments_sampled = total("sampled")
            record.judgments_kept = total("kept")
        elif stage is Stage.TRAIN:
            losses = [s["loss"] for s in summaries if isinstance(s.get("loss"), int | float)]
            record.training_loss = float(losses[0]) if losses else None
            record.model = self.model_of(iteration) if record.model is None else record.model
        elif stage is Stage.EVALUATE:
            scores: dict[str, Any] = {}
            for summary in summaries:
                scores.update(summary.get("scores", {}))
            record.scores = {k: SetScores.model_validate(v) for k, v in scores.items()}
        seconds = self.duration(job, summaries)
        record.stage_seconds[stage.value] = round(seconds, 3)
        resources = self.spec.stages.of(stage)
        pods = (
            resources.shards
            if stage.shardable
            else (resources.nodes if stage is Stage.TRAIN else 1)
        )
        record.gpu_seconds = round(record.gpu_seconds + seconds * resources.gpus * pods, 3)

    def duration(self, job: ObservedJob, summaries: list[dict[str, Any]]) -> float:
        if job.started_at and job.completed_at:
            return max(0.0, (job.completed_at - job.started_at).total_seconds())
        return max((float(s.get("seconds", 0.0)) for s in summaries), default=0.0)

    def next_stage(self) -> None:
        iteration, stage, _ = self.position()
        order = stages_of(iteration)
        message = f"iteration {iteration}: {stage} succeeded"
        self.condition(ConditionType.PROGRESSING, True, Reason.STAGE_SUCCEEDED, message)
        self.condition(ConditionType.STALLED, False, Reason.STAGE_SUCCEEDED, message)
        if stage is not order[-1]:
            self.enter(iteration, order[order.index(stage) + 1])
            return
        record = self.record(iteration)
        record.completed_at = rfc3339(self.now)
        previous_best = self.status.best_iteration
        self.update_best()
        accuracy = self.metric(iteration)
        shown = f"{accuracy:.3f}" if accuracy is not None else "n/a"
        self.event(
            "Normal",
            Reason.ITERATION_COMPLETED,
            f"iteration {iteration} done: {self.spec.early_stop.metric} accuracy {shown}",
        )
        if self.status.best_iteration != previous_best and iteration > 0:
            self.event(
                "Normal", Reason.BEST_ITERATION, f"iteration {iteration} is the best judge so far"
            )
        if self.early_stopped():
            self.succeed(
                Reason.EARLY_STOPPED,
                f"no improvement for {self.spec.early_stop.patience} "
                f"iterations; best is iteration {self.status.best_iteration}",
            )
        elif iteration >= self.spec.iterations:
            self.succeed(
                Reason.COMPLETED,
                f"{iteration} iterations done; best is iteration {self.status.best_iteration}",
            )
        else:
            self.enter(iteration + 1, Stage.JUDGE)

    def metric(self, iteration: int) -> float | None:
        scores = self.record(iteration).scores.get(self.spec.early_stop.metric)
        return scores.accuracy if scores else None

    def update_best(self) -> None:
        best: tuple[float, int] | None = None
        for record in self.status.history:
            value = self.metric(record.iteration)
            if value is not None and (best is None or value > best[0]):
                best = (value, record.iteration)
        if best is None:
            self.status.best_iteration = self.status.best_accuracy = self.status.best_model = None
            return
        # 3 decimals: what the BEST printer column (a number, printed as stored) shows;
        # the history keeps every score's full precision
        self.status.best_accuracy = round(best[0], 3)
        self.status.best_iteration = best[1]
        self.status.best_model = self.model_of(best[1])

    def early_stopped(self) -> bool:
        patience = self.spec.early_stop.patience
        if patience <= 0:
            return False
        scores = [self.metric(r.iteration) for r in self.status.history if r.completed_at]
        values = [s for s in scores if s is not None]
        stale, best = 0, None
        for value in values:
            if best is None or value >= best + self.spec.early_stop.min_improvement:
                best, stale = value, 0
            else:
                stale += 1
        return stale >= patience

    def handle_failure(self, job: ObservedJob) -> None:
        iteration, stage, attempt = self.position()
        failure = FailureClass(job.failure or FailureClass.PROGRAM_ERROR)
        cause = job.failure_message or failure.value
        where = f"iteration {iteration}: stage {stage} failed (Job {job.name}, {failure.value})"
        self.status.attempt.last_failure = f"{where}: {cause}"[:1024]
        resources = self.spec.stages.of(stage)
        if not failure.retryable:
            self.fail(failure.reason, f"{where}: {cause}; not retried (bad input)")
            return
        if failure.consumes_retry:
            self.status.attempt.failures += 1
            if self.status.attempt.failures > resources.max_retries:
                self.fail(
                    Reason.RETRIES_EXHAUSTED,
                    f"{where}: {cause}; gave up after {self.status.attempt.failures} failures",
                )
                return
            delay = backoff(self.status.attempt.failures)
        else:
            self.status.attempt.disruptions += 1
            delay = 0.0
        self.status.attempt.number = attempt + 1
        self.status.attempt.not_before = (
            rfc3339(self.now + timedelta(seconds=delay)) if delay else None
        )
        self.event("Warning", Reason.STAGE_RETRYING, f"{where}: {cause}; retrying in {delay:.0f}s")

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

    def coalesce_events(self) -> None:
        """One Normal event per pass: a hand-off that ends an iteration and starts the next (or
        finishes the run) tells it in one Event, keeping API writes per transition at three
        (Job, status, Event). Warnings stay separate: each names its own problem."""
        normal = [e for e in self.out.events if e.type == "Normal"]
        if len(normal) < 2:
            return
        merged = Event("Normal", normal[-1].reason, "; ".join(e.message for e in normal))
        self.out.events = [e for e in self.out.events if e.type != "Normal"] + [merged]

    def finish(self) -> Plan:
        self.coalesce_events()
        status = self.status
        if status.stage is not None:
            status.progress = f"{status.iteration}/{self.spec.iterations}"
        current = self.current_name() if status.stage is not None else None
        active = {n for n, j in self.jobs.items() if not j.state.is_terminal()}
        deleting = {a.name for a in self.out.actions if isinstance(a, DeleteJob)}
        for stale in sorted(active - {current} - deleting):
            self.out.actions.append(DeleteJob(stale, "no longer the run's current stage"))
        terminal = Phase(status.phase).is_terminal()
        status.children = (
            sorted(({current} & active) | {a.name for a in self.out.creates})
            if current and not terminal
            else []
        )
        return self.out


def plan(run: SelfTaughtRun, jobs: list[ObservedJob], now: datetime) -> Plan:
    """Decide the next actions and the new status of ``run``; pure and deterministic."""
    return _Planner(run, list(jobs), now).run_pass()
