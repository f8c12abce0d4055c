"""The planning pass: (run, observed child Jobs, now) -> :class:`Plan`. Pure, no I/O.

Everything the operator and the embedded runner decide is decided here, so both behave the
same and every transition is a table-driven test away. The caller observes once, calls
:func:`plan`, applies the actions (create a Job whose name already exists = success), writes the
status once if it changed, and only then emits the events.

The run's position is ``(iteration, stage, attempt)`` in the status. A child Job's name is a
function of that position, so re-planning from the same observations yields the same actions
and the same status (a fixed point): a restarted operator converges, never duplicates.

This module is the coordinator: it walks the position forward and hands each decision to its
policy module (immutable, resume, suspend, retry, absorb, best, nothing_kept).
"""

from __future__ import annotations

from datetime import datetime

from selftaught import sizing
from selftaught.api import RunSpec, SelfTaughtRun
from selftaught.conditions import parse_time, rfc3339
from selftaught.phases import ConditionType, JobState, Phase, Reason, Stage, stages_of
from selftaught.plan.absorb import absorb
from selftaught.plan.actions import CreateJob, DeleteJob, Event, Plan
from selftaught.plan.best import early_stopped, metric, update_best
from selftaught.plan.immutable import check_immutable, fence
from selftaught.plan.nothing_kept import stop_when_nothing_kept
from selftaught.plan.observed import ObservedJob
from selftaught.plan.rejected import CreateRejected, create_rejected
from selftaught.plan.resume import apply_resume_from, maybe_extend
from selftaught.plan.retry import handle_failure, watch_active
from selftaught.plan.state import PassState
from selftaught.plan.summary import summary_line
from selftaught.plan.suspend import hold_at_boundary, stage_shown
from selftaught.policy import WorkloadPolicy, refusal
from selftaught.task import StageTask

NO_STORAGE = (
    "spec.storage is required on a cluster: set spec.storage.uri to s3://... or to file:///... "
    "with spec.storage.volumeClaim"
)


def plan(
    run: SelfTaughtRun,
    jobs: list[ObservedJob],
    now: datetime,
    *,
    rejected: CreateRejected | None = None,
    policy: WorkloadPolicy | None = None,
    template_problem: str | None = None,
) -> Plan:
    """Decide the next actions and the new status of ``run``; pure and deterministic.

    ``rejected``: the create this pass would make was just refused by the API server.
    ``policy``: the operator's workload policy (images, ServiceAccounts); None allows all.
    ``template_problem``: what the operator found wrong with the run's templates before the
    start (:mod:`selftaught.controller.templates`); the run is refused with it.
    """
    state = PassState.begin(
        run, list(jobs), now, rejected=rejected, policy=policy, template_problem=template_problem
    )
    state.status.iterations = state.spec.iterations
    if check_immutable(state):
        apply_resume_from(state)
        maybe_extend(state)
        repair_refused_start(state)
        if state.phase is Phase.PENDING:
            start(state)
        if state.phase in (Phase.RUNNING, Phase.SUSPENDED):
            advance(state)
    return finish(state)


def start_refusal(
    spec: RunSpec, policy: WorkloadPolicy, template_problem: str | None = None
) -> tuple[Reason, str] | None:
    """Why a run must not start at all (checked before its first Job), or None."""
    if spec.storage is None:
        return Reason.BAD_INPUT, NO_STORAGE
    if template_problem:
        return Reason.BAD_INPUT, template_problem
    denied = refusal(spec, policy)  # before "accepted": a refused run never starts
    if denied:
        return Reason.POLICY_DENIED, denied
    misfit = sizing.refusal(spec)  # the capacity check: before any GPU is held
    if misfit:
        return Reason.INSUFFICIENT_GPU_MEMORY, misfit
    return None


def repair_refused_start(state: PassState) -> None:
    """A run refused at start (no position, no Job) starts once the spec no longer gives a
    reason to refuse it (storage added, resources that fit); until then it stays Failed
    quietly, without a new Event every pass."""
    if (
        state.phase is Phase.FAILED
        and state.status.stage is None
        and start_refusal(state.spec, state.policy, state.template_problem) is None
    ):
        state.status.phase = Phase.PENDING
        state.status.completed_at = None
        state.condition(ConditionType.FAILED, False, Reason.CREATED, "spec repaired")


def start(state: PassState) -> None:
    """Pending -> Running at iteration 0's first stage, or Failed when the run must not start."""
    refused = start_refusal(state.spec, state.policy, state.template_problem)
    if refused is not None:
        state.fail(*refused)
        return
    status = state.status
    status.phase = Phase.RUNNING
    status.iteration = 0
    status.stage = Stage.SELECT
    status.attempt.number = 0
    status.started_at = status.started_at or rfc3339(state.now)
    state.record(0).model = state.spec.seed_model
    state.record(0).started_at = rfc3339(state.now)
    state.event("Normal", Reason.CREATED, "run accepted; iteration 0 builds the data")


def advance(state: PassState) -> None:
    """Walk forward through every stage already finished, then start the current one."""
    for _ in range(4 * (state.spec.iterations + 2)):  # bounded: each step moves forward
        if state.phase.is_terminal():
            return
        name = state.current_name()
        job = state.jobs.get(name)
        if job is None:
            create_current(state, name)
            return
        if job.state is JobState.SUCCEEDED:
            absorb(state, job)
            if stop_when_nothing_kept(state, job):
                return
            next_stage(state)
            continue
        if job.state is JobState.FAILED:
            handle_failure(state, job)
            if state.phase is Phase.RUNNING:
                continue
            return
        watch_active(state, job)
        return


def create_current(state: PassState, name: str) -> None:
    """Plan the current attempt's Job unless suspended or still backing off."""
    if hold_at_boundary(state):
        return
    not_before = parse_time(state.status.attempt.not_before)
    if not_before is not None and not_before > state.now:
        state.out.requeue_after = (not_before - state.now).total_seconds()
        return
    denied = refusal(state.spec, state.policy)  # images may be edited on a running run
    if denied:
        state.fail(Reason.POLICY_DENIED, denied)
        return
    if state.rejected is not None and state.rejected.name == name:
        create_rejected(state, state.rejected)  # the stage has not started: no StageStarted
        return
    iteration, stage, attempt = state.position()
    if state.status.stage_started_at is None:
        state.status.stage_started_at = rfc3339(state.now)
        message = f"iteration {iteration}: {stage} started (attempt {attempt})"
        state.condition(ConditionType.PROGRESSING, True, Reason.STAGE_STARTED, message)
        state.event("Normal", Reason.STAGE_STARTED, message)
    state.out.actions.append(CreateJob(name=name, task=task(state)))


def task(state: PassState) -> StageTask:
    """The current attempt's task: which model each stage generates with or trains from."""
    iteration, stage, attempt = state.position()
    spec = state.spec
    init_model = None
    if stage in (Stage.JUDGE, Stage.TRAIN):
        model = state.model_of(iteration - 1)
        if stage is Stage.TRAIN:
            seed = spec.training.init_from == "seed"
            init_model = spec.seed_model if seed else state.model_of(iteration - 1)
    elif stage is Stage.EVALUATE:
        model = state.model_of(iteration)
    else:
        model = spec.seed_model
    return StageTask(
        run=state.run.name,
        namespace=state.run.namespace,
        iteration=iteration,
        stage=stage,
        attempt=attempt,
        shards=spec.stages.of(stage).shards if stage.shardable else 1,
        model=model,
        init_model=init_model,
        spec=spec,
    )


def next_stage(state: PassState) -> None:
    """After a stage succeeded: the next stage, the next iteration, or the end of the run."""
    iteration, stage, _ = state.position()
    order = stages_of(iteration)
    message = f"iteration {iteration}: {stage} succeeded"
    state.condition(ConditionType.PROGRESSING, True, Reason.STAGE_SUCCEEDED, message)
    state.condition(ConditionType.STALLED, False, Reason.STAGE_SUCCEEDED, message)
    if stage is not order[-1]:
        state.enter(iteration, order[order.index(stage) + 1])
        return
    state.record(iteration).completed_at = rfc3339(state.now)
    previous_best = state.status.best_iteration
    update_best(state)
    accuracy = metric(state, iteration)
    shown = f"{accuracy:.3f}" if accuracy is not None else "n/a"
    state.event(
        "Normal",
        Reason.ITERATION_COMPLETED,
        f"iteration {iteration} done: {state.spec.early_stop.metric} accuracy {shown}",
    )
    best = state.status.best_iteration
    if best != previous_best and iteration > 0:
        state.event(
            "Normal", Reason.BEST_ITERATION, f"iteration {iteration} is the best judge so far"
        )
    if early_stopped(state):
        patience = state.spec.early_stop.patience
        state.succeed(
            Reason.EARLY_STOPPED,
            f"no improvement for {patience} iterations; best is iteration {best}",
        )
    elif iteration >= state.spec.iterations:
        state.succeed(Reason.COMPLETED, f"{iteration} iterations done; best is iteration {best}")
    else:
        state.enter(iteration + 1, Stage.JUDGE)


def coalesce_events(state: PassState) -> None:
    """One Normal event per pass: a hand-off that ends an iteration and starts the next (or
    finishes the run) tells it in one Event, keeping API writes per transition at three
    (Job, status, Event). Warnings stay separate: each names its own problem."""
    normal = [e for e in state.out.events if e.type == "Normal"]
    if len(normal) < 2:
        return
    merged = Event("Normal", normal[-1].reason, "; ".join(e.message for e in normal))
    state.out.events = [e for e in state.out.events if e.type != "Normal"] + [merged]


def finish(state: PassState) -> Plan:
    """Close the pass: fence the spec, delete strays, list the current children."""
    coalesce_events(state)
    fence(state)
    status = state.status
    if status.stage is not None:
        status.progress = f"{status.iteration}/{state.spec.iterations}"
    status.summary = summary_line(status, iterations=state.spec.iterations)
    stage = Stage(status.stage) if status.stage is not None else None
    status.stage_shown = stage_shown(state.phase, status.iteration, stage)
    current = state.current_name() if status.stage is not None else None
    active = {n for n, j in state.jobs.items() if not j.state.is_terminal()}
    deleting = {a.name for a in state.out.deletes}
    for stale in sorted(active - {current} - deleting):
        state.out.actions.append(DeleteJob(stale, "no longer the run's current stage"))
    terminal = state.phase.is_terminal()
    status.children = (
        sorted(({current} & active) | {a.name for a in state.out.creates})
        if current and not terminal
        else []
    )
    return state.out
