"""Helpers for planner tests: a run factory and a tiny simulated cluster.

The simulation is deliberately dumb: every Job the planner asks for becomes an ObservedJob whose
outcome a test chooses. It never decides anything itself, so what the tests see is the planner's
behaviour alone.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from selftaught.api import SelfTaughtRun
from selftaught.phases import FailureClass, JobState, Stage
from selftaught.plan import CreateJob, ObservedJob, Plan, plan
from selftaught.plan.state import PassState

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def make_run(**spec: Any) -> SelfTaughtRun:
    body: dict[str, Any] = {
        "seedModel": "builtin://tiny-judge",
        "storage": {"uri": "file:///artifacts"},
        "instructions": {"source": "builtin://arithmetic"},
        "iterations": 2,
    }
    body.update(spec)
    return SelfTaughtRun.model_validate(
        {
            "metadata": {"name": "demo", "namespace": "ns", "uid": "uid-1", "generation": 1},
            "spec": body,
        }
    )


def summary_for(stage: Stage, iteration: int, shard: int = 0) -> dict[str, Any]:
    """A plausible worker summary; accuracy rises with the iteration."""
    return {
        Stage.SELECT: {"instructions": 100, "heldout": 10, "badLines": 0, "read": 110},
        Stage.PAIRS: {"pairs": 40 + shard, "heldoutPairs": 5, "failed": 1},
        Stage.JUDGE: {"pairs": 40, "sampled": 160, "kept": 30 + shard, "invalid": 3},
        Stage.TRAIN: {"loss": 0.25, "examples": 30, "steps": 2, "model": "ignored"},
        Stage.EVALUATE: {
            "scores": {"heldout": {"accuracy": 0.6 + 0.1 * iteration, "examples": 10}}
        },
    }[stage]


def observed(
    create: CreateJob,
    state: JobState = JobState.SUCCEEDED,
    *,
    at: datetime = T0,
    failure: FailureClass | None = None,
    seconds: float = 4.0,
) -> ObservedJob:
    task = create.task
    done = state.is_terminal()
    summaries = (
        {k: summary_for(task.stage, task.iteration, k) for k in range(task.shards)}
        if state is JobState.SUCCEEDED
        else {}
    )
    return ObservedJob(
        name=create.name,
        iteration=task.iteration,
        stage=task.stage,
        attempt=task.attempt,
        state=state,
        failure=failure,
        failure_message="boom" if failure else None,
        summaries=summaries,
        started_at=at,
        completed_at=at + timedelta(seconds=seconds) if done else None,
    )


Outcome = Callable[[CreateJob], ObservedJob]


def drive(
    run: SelfTaughtRun,
    outcome: Outcome | None = None,
    *,
    steps: int = 100,
    now: datetime = T0,
) -> tuple[SelfTaughtRun, dict[str, ObservedJob], list[Plan]]:
    """Plan, observe every created Job with ``outcome``, repeat until terminal or stuck."""
    outcome = outcome or (lambda create: observed(create))
    jobs: dict[str, ObservedJob] = {}
    plans: list[Plan] = []
    for _ in range(steps):
        result = plan(run, list(jobs.values()), now)
        plans.append(result)
        run = run.model_copy(update={"status": result.status})
        if result.status.phase in ("Succeeded", "Failed") or (
            not result.creates and result.requeue_after is None
        ):
            break
        for create in result.creates:
            jobs[create.name] = outcome(create)
        now += timedelta(seconds=max(5.0, result.requeue_after or 0.0))
    return run, jobs, plans


def state_of(
    run: SelfTaughtRun, jobs: list[ObservedJob] | None = None, *, now: datetime = T0
) -> PassState:
    """A pass over ``run`` for testing one policy function on its own."""
    return PassState.begin(run, jobs or [], now)


def started(run: SelfTaughtRun, **status: Any) -> SelfTaughtRun:
    """``run`` after its first pass (select planned), with ``status`` fields overridden."""
    first = plan(run, [], T0).status.model_copy(update=status)
    return run.model_copy(update={"status": first})
