"""The serving policy: what is served (always the best judge) and what status says about it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from selftaught.api import RunStatus, ServingStatus
from selftaught.conditions import find
from selftaught.phases import ConditionType
from selftaught.plan.serving import (
    DeploymentView,
    ServingDecision,
    ServingTarget,
    decide,
    record_serving,
)
from tests.unit.planning import make_run

NOW = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
BEST = ServingTarget("s3://b/demo/iteration-2/train/model", 2)
ENDPOINT = "http://demo-judge.ns.svc:8000/v1"


def status_with(**fields: Any) -> RunStatus:
    return RunStatus.model_validate(fields)


@pytest.mark.parametrize(
    ("serve", "status", "expected"),
    [
        pytest.param(None, {}, ServingDecision(), id="never-served-nothing-to-do"),
        pytest.param({}, {}, ServingDecision(), id="serve-set-no-best-yet"),
        pytest.param(
            {}, {"bestModel": BEST.model_uri, "bestIteration": 2}, ServingDecision(target=BEST),
            id="serve-the-best",
        ),
        pytest.param(
            None, {"bestModel": BEST.model_uri, "bestIteration": 2, "serving": {"iteration": 2}},
            ServingDecision(remove=True), id="serve-removed-after-serving",
        ),
        pytest.param(
            None,
            {"conditions": [{"type": "Serving", "status": "False", "reason": "NotRequested",
                             "lastTransitionTime": "2026-12-06T09:00:00Z"}]},
            ServingDecision(), id="already-removed-is-idle",
        ),
    ],
)  # fmt: skip
def test_decide_serves_the_best_or_removes(
    serve: dict[str, Any] | None, status: dict[str, Any], expected: ServingDecision
) -> None:
    run = make_run(serve=serve) if serve is not None else make_run()
    assert decide(run.spec, status_with(**status)) == expected


def view(**fields: Any) -> DeploymentView:
    base: dict[str, Any] = {
        "serves": BEST, "replicas": 2, "ready_replicas": 2, "updated_replicas": 2,
        "total_replicas": 2, "observed": True,
    }  # fmt: skip
    base.update(fields)
    return DeploymentView(**base)


@pytest.mark.parametrize(
    ("deployment", "ok", "reason"),
    [
        pytest.param(view(), "True", "Ready", id="rolled-out-and-ready"),
        pytest.param(view(observed=False), "False", "Rolling", id="new-template-not-observed"),
        pytest.param(view(updated_replicas=1, total_replicas=3), "False", "Rolling",
                     id="surge-pod-beside-old-ones"),
        pytest.param(view(ready_replicas=0), "False", "Rolling", id="none-ready-yet"),
        pytest.param(view(serves=ServingTarget("s3://old", 1)), "False", "Rolling",
                     id="template-still-on-the-old-judge"),
        pytest.param(None, "False", "Rolling", id="just-created"),
    ],
)  # fmt: skip
def test_serving_condition_is_true_only_when_the_best_is_rolled_out(
    deployment: DeploymentView | None, ok: str, reason: str
) -> None:
    run = make_run(serve={"replicas": 2})
    status = status_with(bestModel=BEST.model_uri, bestIteration=2)
    record_serving(
        status, spec=run.spec, decision=ServingDecision(target=BEST), view=deployment,
        endpoint=ENDPOINT, service="demo-judge", generation=1, now=NOW,
    )  # fmt: skip
    condition = find(status.conditions, ConditionType.SERVING)
    assert condition is not None
    assert (condition.status, condition.reason) == (ok, reason)
    assert status.serving is not None
    assert (status.serving.model_uri, status.serving.iteration) == (BEST.model_uri, 2)
    assert status.serving.endpoint == ENDPOINT


def test_events_tell_a_new_judge_once_and_readiness_once() -> None:
    run = make_run(serve={"replicas": 2})
    status = status_with(bestModel=BEST.model_uri, bestIteration=2)
    told = []
    for deployment in (None, view(ready_replicas=0), view(), view()):
        told += record_serving(
            status, spec=run.spec, decision=ServingDecision(target=BEST), view=deployment,
            endpoint=ENDPOINT, service="demo-judge", generation=1, now=NOW,
        )  # fmt: skip
    assert [event.reason for event in told] == ["Rolling", "Ready"]


def test_no_best_yet_and_removal() -> None:
    run = make_run(serve={})
    status = status_with()
    record_serving(
        status, spec=run.spec, decision=ServingDecision(), view=None, endpoint=ENDPOINT,
        service="demo-judge", generation=1, now=NOW,
    )  # fmt: skip
    found = find(status.conditions, ConditionType.SERVING)
    assert found is not None
    assert (found.status, found.reason) == ("False", "NoBestYet")
    assert status.serving == ServingStatus(service="demo-judge", replicas=1)
    unset = make_run()
    record_serving(
        status, spec=unset.spec, decision=ServingDecision(remove=True), view=None, endpoint=None,
        service=None, generation=2, now=NOW,
    )  # fmt: skip
    found = find(status.conditions, ConditionType.SERVING)
    assert found is not None
    assert (found.status, found.reason) == ("False", "NotRequested")
    assert status.serving is None
    assert decide(unset.spec, status) == ServingDecision()
