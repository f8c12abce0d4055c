"""Immutable-field policy (selftaught.plan.immutable): fenced from the first Job, refusals name
only what changed, reverting heals, old single-hash statuses keep working."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from selftaught import crd
from selftaught.api import IMMUTABLE_RULE, RunSpec, StorageSpec, immutable_paths
from selftaught.conditions import find
from selftaught.phases import ConditionType, Phase
from selftaught.plan import plan
from tests.unit.planning import T0, make_run

IMMUTABLE = ["seedModel", "storage", "instructions", "pairs", "evaluation.heldOutFraction"]


def test_the_immutable_fields_are_read_from_the_markers() -> None:
    assert [path for _, path in immutable_paths(RunSpec)] == IMMUTABLE
    assert list(make_run().spec.immutable_view()) == IMMUTABLE


@pytest.mark.parametrize("path", IMMUTABLE)
def test_every_immutable_field_is_immutable_in_the_crd_too(path: str) -> None:
    node = crd.spec_schema()
    for part in path.split("."):
        node = node["properties"][part]
    rules = [v["rule"] for v in node.get("x-kubernetes-validations", [])]
    assert IMMUTABLE_RULE in rules


def started_run():  # type: ignore[no-untyped-def]
    run = make_run()
    return run.model_copy(update={"status": plan(run, [], T0).status})


def spec_accepted(status: Any) -> Any:
    return find(status.conditions, ConditionType.SPEC_ACCEPTED)


# a change to the spec (attribute path -> new value) -> the fields the refusal names
CHANGES: list[Any] = [
    pytest.param({("seed_model",): "s3://other/model"}, ["seedModel"], id="seed-model"),
    pytest.param({("storage",): StorageSpec(uri="s3://other/runs")}, ["storage"], id="storage"),
    pytest.param(
        {("instructions", "max_instructions"): 7}, ["instructions"], id="instructions-nested"
    ),
    pytest.param({("pairs", "temperature"): 0.1}, ["pairs"], id="pairs"),
    pytest.param(
        {("evaluation", "held_out_fraction"): 0.2},
        ["evaluation.heldOutFraction"],
        id="held-out-fraction",
    ),
    pytest.param(
        {("seed_model",): "s3://other/model", ("pairs", "top_p"): 0.5},
        ["seedModel", "pairs"],
        id="two-fields",
    ),
]


def change(run: Any, changes: dict[tuple[str, ...], Any]) -> None:
    for path, value in changes.items():
        owner = run.spec
        for attribute in path[:-1]:
            owner = getattr(owner, attribute)
        setattr(owner, path[-1], value)


@pytest.mark.parametrize(("changes", "named"), CHANGES)
def test_a_refusal_names_only_the_changed_fields(
    changes: dict[tuple[str, ...], Any], named: list[str]
) -> None:
    run = started_run()
    change(run, changes)
    result = plan(run, [], T0)
    assert result.creates == []
    refused = spec_accepted(result.status)
    assert (refused.status, refused.reason) == ("False", "ImmutableFieldChanged")
    for path in IMMUTABLE:
        assert (f"spec.{path} " in refused.message) == (path in named), refused.message
    assert [e.type for e in result.events] == ["Warning"]
    assert result.status.message == refused.message


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({("judging", "samples_per_pair"): 4}, id="judging"),
        pytest.param({("iterations",): 5}, id="iterations"),
        pytest.param({("evaluation", "majority_vote"): 3}, id="evaluation-other-than-fraction"),
        pytest.param({("suspend",): True}, id="suspend"),
    ],
)
def test_mutable_changes_are_accepted(changes: dict[tuple[str, ...], Any]) -> None:
    run = started_run()
    change(run, changes)
    assert spec_accepted(plan(run, [], T0).status).status == "True"


def test_reverting_heals_the_condition_and_the_message() -> None:
    run = started_run()
    original = run.spec.seed_model
    run.spec.seed_model = "s3://other/model"
    refused = plan(run, [], T0)
    run = run.model_copy(update={"status": refused.status})
    run.spec.seed_model = original
    healed = plan(run, [], T0)
    assert spec_accepted(healed.status).status == "True"
    assert "refused" not in (healed.status.message or "")
    assert [e.reason for e in healed.events] == ["Accepted"]


def old_operator_fingerprint(spec: RunSpec) -> str:
    """What operators before specFingerprints stored, written out as they computed it."""
    view = {
        "seedModel": spec.seed_model,
        "storage": spec.storage.dump() if spec.storage else None,
        "instructions": spec.instructions.dump(),
        "pairs": spec.pairs.dump(),
        "heldOutFraction": spec.evaluation.held_out_fraction,
    }
    return hashlib.sha256(json.dumps(view, sort_keys=True).encode()).hexdigest()[:16]


def legacy_run():  # type: ignore[no-untyped-def]
    run = started_run()
    run.status.spec_fingerprints = {}
    run.status.spec_fingerprint = old_operator_fingerprint(run.spec)
    return run


def test_a_run_started_by_an_older_operator_is_not_refused_after_upgrade() -> None:
    run = legacy_run()
    result = plan(run, [], T0)
    assert spec_accepted(result.status).status == "True"
    assert sorted(result.status.spec_fingerprints) == sorted(IMMUTABLE)


def test_a_legacy_fingerprint_still_fences_the_fields() -> None:
    run = legacy_run()
    run.spec.pairs.temperature = 0.3
    refused = spec_accepted(plan(run, [], T0).status)
    assert refused.status == "False"
    assert "one of spec.seedModel" in refused.message


def test_a_run_refused_at_start_for_missing_storage_can_be_repaired() -> None:
    run = make_run()
    run.spec.storage = None
    failed = plan(run, [], T0)
    assert failed.status.phase == Phase.FAILED
    assert failed.status.spec_fingerprints == {}
    run = run.model_copy(update={"status": failed.status})
    run.spec.storage = StorageSpec(uri="s3://bucket/runs")
    repaired = plan(run, [], T0)
    assert repaired.status.phase == Phase.RUNNING
    assert [c.name for c in repaired.creates] == ["demo-i0-sel-a0"]
    assert find(repaired.status.conditions, ConditionType.FAILED).status == "False"
    assert spec_accepted(repaired.status).status == "True"
    # Fenced from now on: the first Job was planned.
    run = run.model_copy(update={"status": repaired.status})
    run.spec.storage = StorageSpec(uri="s3://bucket/elsewhere")
    assert spec_accepted(plan(run, [], T0).status).status == "False"


def test_a_run_suspended_before_its_first_job_is_not_fenced_yet() -> None:
    run = make_run(suspend=True)
    run = run.model_copy(update={"status": plan(run, [], T0).status})
    run.spec.seed_model = "s3://other/model"
    run.spec.suspend = False
    result = plan(run, [], T0)
    assert spec_accepted(result.status).status == "True"
    assert result.creates[0].task.model == "s3://other/model"
    assert result.status.history[0].model == "s3://other/model"


def test_changing_an_immutable_field_is_refused_with_one_warning() -> None:
    run = make_run()
    run = run.model_copy(update={"status": plan(run, [], T0).status})
    run.spec.seed_model = "s3://other/model"
    first = plan(run, [], T0)
    assert first.creates == []
    refused = next(c for c in first.status.conditions if c.type == "SpecAccepted")
    assert (refused.status, refused.reason) == ("False", "ImmutableFieldChanged")
    assert [e.type for e in first.events] == ["Warning"]
    run = run.model_copy(update={"status": first.status})
    assert plan(run, [], T0).events == []
