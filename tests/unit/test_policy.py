"""The operator's workload policy: images and ServiceAccounts a run may ask for.

A pure table test of :func:`selftaught.policy.refusal`, then the planner: a refused run fails
with ``PolicyDenied`` and gets no Job, at its start and when an image is edited mid-run.
"""

from __future__ import annotations

from typing import Any

import pytest

from selftaught.api import RunSpec
from selftaught.phases import Phase
from selftaught.plan import plan
from selftaught.policy import WorkloadPolicy, named_images, refusal
from tests.unit.planning import T0, make_run, observed

POLICY = WorkloadPolicy(
    allowed_image_prefixes=("registry.example.com/ml/", "ghcr.io/selftaught/worker:"),
    allowed_service_accounts=("selftaught-worker",),
)
BASE: dict[str, Any] = {
    "seedModel": "builtin://tiny-judge",
    "storage": {"uri": "file:///artifacts"},
    "instructions": {"source": "builtin://arithmetic"},
}


def spec(**fields: Any) -> RunSpec:
    return RunSpec.model_validate({**BASE, **fields})


#: (id, spec fields, words of the refusal or None when allowed)
CASES: list[tuple[str, dict[str, Any], str | None]] = [
    ("nothing-named", {}, None),
    ("allowed-worker-image", {"worker": {"image": "registry.example.com/ml/worker:1"}}, None),
    ("allowed-tag-prefix", {"worker": {"image": "ghcr.io/selftaught/worker:0.2.0"}}, None),
    ("allowed-account", {"worker": {"serviceAccountName": "selftaught-worker"}}, None),
    (
        "foreign-worker-image",
        {"worker": {"image": "docker.io/evil/miner:latest"}},
        "spec.worker.image: 'docker.io/evil/miner:latest' does not start with an allowed prefix",
    ),
    (
        "lookalike-prefix",
        {"worker": {"image": "registry.example.com/ml-evil/x:1"}},
        "spec.worker.image",
    ),
    (
        "foreign-stage-image",
        {"stages": {"train": {"image": "docker.io/evil/x:1"}}},
        "spec.stages.train.image",
    ),
    (
        "foreign-account",
        {"worker": {"serviceAccountName": "cluster-admin-sa"}},
        "spec.worker.serviceAccountName: 'cluster-admin-sa' is not an allowed ServiceAccount",
    ),
]


@pytest.mark.parametrize(("fields", "words"), [pytest.param(f, w, id=i) for i, f, w in CASES])
def test_refusal_names_the_field_and_value(fields: dict[str, Any], words: str | None) -> None:
    message = refusal(spec(**fields), POLICY)
    if words is None:
        assert message is None
    else:
        assert message is not None
        assert words in message


def test_an_empty_policy_allows_anything() -> None:
    anything = spec(
        worker={"image": "docker.io/evil/x:1", "serviceAccountName": "root"},
        stages={"judge": {"image": "x"}},
    )
    assert not WorkloadPolicy().enabled
    assert refusal(anything, WorkloadPolicy()) is None


def test_named_images_lists_every_image_field() -> None:
    images = named_images(spec(worker={"image": "a"}, stages={"judge": {"image": "b"}}))
    assert images == {"spec.worker.image": "a", "spec.stages.judge.image": "b"}


def test_a_refused_run_fails_before_any_job() -> None:
    run = make_run(worker={"image": "docker.io/evil/x:1"})
    result = plan(run, [], T0, policy=POLICY)
    assert result.creates == []
    assert result.status.phase == Phase.FAILED
    failed = [c for c in result.status.conditions if c.type == "Failed"]
    assert failed[0].reason == "PolicyDenied"
    assert "spec.worker.image" in failed[0].message
    assert [e.reason for e in result.events] == ["PolicyDenied"]


def test_an_allowed_run_gets_its_job() -> None:
    run = make_run(worker={"image": "registry.example.com/ml/worker:1"})
    result = plan(run, [], T0, policy=POLICY)
    assert len(result.creates) == 1
    assert result.status.phase == Phase.RUNNING


def test_an_image_edited_mid_run_gets_no_further_job() -> None:
    run = make_run(worker={"image": "registry.example.com/ml/worker:1"})
    first = plan(run, [], T0, policy=POLICY)
    done = observed(first.creates[0])
    run = run.model_copy(update={"status": first.status})
    run.spec.worker.image = "docker.io/evil/x:1"
    result = plan(run, [done], T0, policy=POLICY)
    assert result.creates == []
    assert result.status.phase == Phase.FAILED
