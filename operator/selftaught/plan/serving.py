"""Serving policy: which judge ``spec.serve`` serves, and what the run's status says about it.
Pure.

The served judge is always the run's best (``status.bestModel``/``bestIteration``), so it moves
only when the best moves: one change of best is one change of the Deployment's pod template,
which is one rollout. The controller (:mod:`selftaught.controller.serving`) applies the
:class:`ServingDecision`, reads the Deployment back into a :class:`DeploymentView`, and
:func:`record_serving` turns that view into ``status.serving`` and the ``Serving`` condition:

==========================================  =======  ===========  ==========================
situation                                   status   reason       message says
==========================================  =======  ===========  ==========================
spec.serve unset (after something served)   False    NotRequested  removed
no evaluated iteration yet                  False    NoBestYet     waits for the baseline
template not yet rolled out everywhere      False    Rolling       ready/updated replicas
all replicas updated, at least one ready    True     Ready         iteration and model
==========================================  =======  ===========  ==========================
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from selftaught.api import RunSpec, RunStatus, ServingStatus
from selftaught.conditions import find, is_true, set_condition
from selftaught.phases import ConditionType, Reason
from selftaught.plan.actions import Event


@dataclass(frozen=True)
class ServingTarget:
    """The judge to serve."""

    model_uri: str
    iteration: int


@dataclass(frozen=True)
class ServingDecision:
    """What the controller must make true: ``target`` served, or (``remove``) nothing."""

    target: ServingTarget | None = None
    #: Delete the Deployment and Service (spec.serve was removed).
    remove: bool = False

    @property
    def idle(self) -> bool:
        """Nothing to apply and nothing to remove (serve set, no best yet; or never served)."""
        return self.target is None and not self.remove


@dataclass(frozen=True)
class DeploymentView:
    """What a plan reads of the serving Deployment (the controller builds it from the object)."""

    #: The judge its pod template serves (from the template's annotations).
    serves: ServingTarget | None
    #: Replicas wanted (spec.replicas).
    replicas: int
    ready_replicas: int = 0
    updated_replicas: int = 0
    #: All pods, old template and new (status.replicas).
    total_replicas: int = 0
    #: The Deployment controller has seen the latest template (observedGeneration >= generation).
    observed: bool = False

    @property
    def rolled_out(self) -> bool:
        """Every replica runs the current template, none of the old is left, and one is ready
        (what ``kubectl rollout status`` waits for, with ``readyReplicas`` for availability)."""
        return (
            self.observed
            and self.updated_replicas >= self.replicas
            and self.total_replicas == self.updated_replicas
            and self.ready_replicas >= 1
        )


def decide(spec: RunSpec, status: RunStatus) -> ServingDecision:
    """Serve the best judge when ``spec.serve`` is set; remove what was served when it is not."""
    if spec.serve is None:
        served_before = status.serving is not None or _serving_condition(status)
        return ServingDecision(remove=served_before)
    if status.best_model is None or status.best_iteration is None:
        return ServingDecision()
    return ServingDecision(target=ServingTarget(status.best_model, status.best_iteration))


def record_serving(
    status: RunStatus,
    *,
    spec: RunSpec,
    decision: ServingDecision,
    view: DeploymentView | None,
    endpoint: str | None,
    service: str | None,
    generation: int,
    now: datetime,
) -> list[Event]:
    """Write ``status.serving`` and the Serving condition; the Events worth telling (a new
    judge being rolled out, and the rollout finishing)."""
    events: list[Event] = []

    def condition(ok: bool, reason: Reason, message: str) -> bool:
        return set_condition(
            status.conditions, ConditionType.SERVING, ok,
            reason=reason, message=message, generation=generation, now=now,
        )  # fmt: skip

    if spec.serve is None:
        status.serving = None
        if _serving_condition(status):
            condition(
                False, Reason.NOT_SERVING, "spec.serve is unset: the judge server was removed"
            )
        return events
    target = decision.target
    if target is None:
        status.serving = ServingStatus(service=service, replicas=spec.serve.replicas)
        condition(False, Reason.NO_BEST_YET, "no iteration evaluated yet: nothing to serve")
        return events
    before = status.serving.model_uri if status.serving else None
    status.serving = ServingStatus(
        model_uri=target.model_uri,
        iteration=target.iteration,
        endpoint=endpoint,
        service=service,
        replicas=spec.serve.replicas,
        ready_replicas=view.ready_replicas if view else 0,
        updated_replicas=view.updated_replicas if view else 0,
    )
    if before != target.model_uri:
        events.append(
            Event("Normal", Reason.SERVING_ROLLING,
                  f"serving iteration {target.iteration} ({target.model_uri})")
        )  # fmt: skip
    if view is not None and view.serves == target and view.rolled_out:
        was_ready = is_true(status.conditions, ConditionType.SERVING)
        message = (
            f"iteration {target.iteration} served at {endpoint} "
            f"({view.ready_replicas}/{view.replicas} ready)"
        )
        condition(True, Reason.SERVING_READY, message)
        if not was_ready:
            events.append(Event("Normal", Reason.SERVING_READY, message))
        return events
    ready = view.ready_replicas if view else 0
    updated = view.updated_replicas if view else 0
    condition(
        False,
        Reason.SERVING_ROLLING,
        f"rolling out iteration {target.iteration}: {updated}/{spec.serve.replicas} updated, "
        f"{ready} ready",
    )
    return events


def _serving_condition(status: RunStatus) -> bool:
    found = find(status.conditions, ConditionType.SERVING)
    return found is not None and found.reason != Reason.NOT_SERVING
