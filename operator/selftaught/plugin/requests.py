"""What each plugin command asks of the cluster, decided from the run alone. Pure: no I/O.

Every refusal is a :class:`PluginError` whose text a person can act on (what was asked, what
the run allows), checked here before anything is written: a retry of an iteration the run has
not reached, or of a stage that iteration does not have, never lands in the spec.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from selftaught import names
from selftaught.api import RunStatus, SelfTaughtRun
from selftaught.phases import Stage

#: The stages each kind of iteration runs (as the CRD's resumeFrom rule says).
BASELINE_STAGES = (Stage.SELECT, Stage.PAIRS, Stage.EVALUATE)
LOOP_STAGES = (Stage.JUDGE, Stage.TRAIN, Stage.EVALUATE)
#: The label the Job controller puts on each pod of an Indexed Job.
INDEX_LABEL = "batch.kubernetes.io/job-completion-index"


class PluginError(Exception):
    """Bad input or a missing object: printed as one line, exit status 1, no traceback."""


def stage_of(text: str) -> Stage:
    try:
        return Stage(text)
    except ValueError:
        known = ", ".join(s.value for s in Stage)
        raise PluginError(f"unknown stage '{text}' (one of: {known})") from None


def stages_of(iteration: int) -> tuple[Stage, ...]:
    return BASELINE_STAGES if iteration == 0 else LOOP_STAGES


def check_iteration(run: SelfTaughtRun, iteration: int, *, reached: bool) -> None:
    """``iteration`` exists in the spec (0..iterations) and, when ``reached``, has started."""
    planned = run.spec.iterations
    if not 0 <= iteration <= planned:
        raise PluginError(
            f"iteration {iteration} is out of range: run {run.name} has iterations 0..{planned}"
        )
    if reached and iteration > run.status.iteration:
        raise PluginError(
            f"iteration {iteration} has not started: run {run.name} is at iteration "
            f"{run.status.iteration}"
        )


def check_stage(iteration: int, stage: Stage) -> None:
    if stage not in stages_of(iteration):
        allowed = ", ".join(s.value for s in stages_of(iteration))
        raise PluginError(f"iteration {iteration} has no {stage.value} stage (it has: {allowed})")


def retry_patch(
    run: SelfTaughtRun, *, stage: Stage, iteration: int, request: str
) -> dict[str, Any]:
    """The merge patch that makes the operator re-run from ``iteration``/``stage``.

    ``request`` (the caller's clock) makes every retry a distinct request: the planner applies
    each distinct ``resumeFrom`` once, so without it a second retry of the same position would be
    accepted by the API server and then ignored.
    """
    check_iteration(run, iteration, reached=True)
    check_stage(iteration, stage)
    resume = {"iteration": iteration, "stage": stage.value, "request": request}
    return {"spec": {"resumeFrom": resume}}


def suspend_patch(*, suspend: bool) -> dict[str, Any]:
    return {"spec": {"suspend": suspend}}


@dataclass(frozen=True)
class LogTarget:
    """Which pods ``logs`` reads: a label selector and a description for messages."""

    selector: str
    what: str


def log_target(
    run: SelfTaughtRun, *, stage: Stage, iteration: int | None, shard: int | None
) -> LogTarget:
    """The pods of ``stage`` in ``iteration`` (default: the current one), optionally one shard.

    The selector names the run, iteration and stage labels every child Job's pods carry
    (:func:`selftaught.names.child_labels`); the latest attempt is picked from what is listed.
    """
    chosen = run.status.iteration if iteration is None else iteration
    check_iteration(run, chosen, reached=True)
    check_stage(chosen, stage)
    labels = {
        names.LABEL_RUN: names.label_value(run.name),
        names.LABEL_ITERATION: str(chosen),
        names.LABEL_STAGE: stage.value,
    }
    what = f"run {run.name}, iteration {chosen}, stage {stage.value}"
    if shard is not None:
        if shard < 0:
            raise PluginError(f"shard {shard} is out of range (shards count from 0)")
        labels[INDEX_LABEL] = str(shard)
        what += f", shard {shard}"
    return LogTarget(",".join(f"{k}={v}" for k, v in labels.items()), what)


def latest_attempt(pods: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The pods of the highest attempt among ``pods``, ordered by shard index then name."""
    if not pods:
        return []

    def attempt(pod: dict[str, Any]) -> int:
        return int(pod["metadata"].get("labels", {}).get(names.LABEL_ATTEMPT, 0))

    last = max(attempt(pod) for pod in pods)
    chosen = [pod for pod in pods if attempt(pod) == last]
    return sorted(
        chosen,
        key=lambda p: (int(p["metadata"]["labels"].get(INDEX_LABEL, 0)), p["metadata"]["name"]),
    )


@dataclass(frozen=True)
class Comparison:
    """One run's column in ``compare``."""

    name: str
    phase: str
    progress: str
    best_iteration: int | None
    best_accuracy: float | None
    #: Scores of the best iteration: ``set`` -> accuracy, ``set/section`` -> section score.
    scores: dict[str, float]
    gpu_hours: float


def comparison(name: str, status: RunStatus) -> Comparison:
    best = next((r for r in status.history if r.iteration == status.best_iteration), None)
    scores: dict[str, float] = {}
    if best is not None:
        for set_name, set_scores in sorted(best.scores.items()):
            scores[set_name] = set_scores.accuracy
            for section, value in sorted((set_scores.sections or {}).items()):
                scores[f"{set_name}/{section}"] = value
    return Comparison(
        name=name,
        phase=status.phase.value,
        progress=status.progress or "-",
        best_iteration=status.best_iteration,
        best_accuracy=status.best_accuracy,
        scores=scores,
        gpu_hours=sum(r.gpu_seconds for r in status.history) / 3600,
    )


def served_service(run: SelfTaughtRun) -> tuple[str, int]:
    """(Service, port) of the run's judge server, or why there is none to ask."""
    serving = run.status.serving
    if run.spec.serve is None:
        raise PluginError(
            f"run {run.name} serves no judge: set spec.serve (see docs/operator.md, "
            "'Serve the best judge'), or pass --url"
        )
    if serving is None or serving.service is None:
        raise PluginError(f"run {run.name} has no judge server yet (the operator creates it)")
    if serving.model_uri is None:
        raise PluginError(
            f"run {run.name} has no evaluated judge to serve yet (phase {run.status.phase.value})"
        )
    return serving.service, run.spec.serve.port
