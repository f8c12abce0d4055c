"""The operator checks a run's configmap:// templates before its first Job: a missing
ConfigMap, a missing key or a bad placeholder refuses the run with BadInput naming the field,
and a run repaired (the ConfigMap fixed) starts (:mod:`selftaught.controller.templates`, the
planner's start refusal)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from selftaught.controller.kube import ApiError
from selftaught.controller.templates import template_problem
from selftaught.phases import ConditionType, Phase, Reason, Stage
from selftaught.plan import plan
from tests.unit.planning import T0, make_run

JUDGE = json.dumps({"user": "{question} {answer_a} {answer_b}"})
SIMILAR = json.dumps({"user": "Rewrite: {instruction}"})
TEMPLATES = {
    "judging": {"template": "configmap://prompts/judge.yaml"},
    "pairs": {"template": "configmap://prompts/similar.yaml"},
}


class FakeApi:
    """The one call the check makes; records every ConfigMap it was asked for."""

    def __init__(self, configmaps: dict[str, dict[str, Any]], error: int | None = None) -> None:
        self.configmaps = configmaps
        self.error = error
        self.asked: list[tuple[str, str]] = []

    def get_configmap(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.asked.append((namespace, name))
        if self.error is not None:
            raise ApiError(self.error, "Forbidden", "configmaps is forbidden")
        return self.configmaps.get(name)


#: (id, ConfigMaps in the namespace, expected problem or None)
CASES: list[tuple[str, dict[str, dict[str, Any]], str | None]] = [
    ("both-keys-good", {"prompts": {"data": {"judge.yaml": JUDGE, "similar.yaml": SIMILAR}}}, None),
    (
        "binary-data",
        {
            "prompts": {
                "data": {"judge.yaml": JUDGE},
                "binaryData": {"similar.yaml": base64.b64encode(SIMILAR.encode()).decode()},
            }
        },
        None,
    ),
    (
        "configmap-missing",
        {},
        "spec.pairs.template (configmap://prompts/similar.yaml): ConfigMap prompts not found in "
        "namespace ns; spec.judging.template (configmap://prompts/judge.yaml): ConfigMap prompts "
        "not found in namespace ns",
    ),
    (
        "key-missing",
        {"prompts": {"data": {"judge.yaml": JUDGE}}},
        "spec.pairs.template (configmap://prompts/similar.yaml): ConfigMap prompts has no key "
        "similar.yaml (keys: judge.yaml)",
    ),
    (
        "unknown-placeholder",
        {
            "prompts": {
                "data": {
                    "judge.yaml": JUDGE.replace("{question}", "{foo}"),
                    "similar.yaml": SIMILAR,
                }
            }
        },
        "spec.judging.template (configmap://prompts/judge.yaml): user part: unknown placeholder "
        "{foo}; allowed: {question}, {answer_a}, {answer_b}, {reference}",
    ),
]


@pytest.mark.parametrize(("configmaps", "expected"), [pytest.param(*c[1:], id=c[0]) for c in CASES])
def test_configmap_templates_are_checked_naming_the_field(
    configmaps: dict[str, dict[str, Any]], expected: str | None
) -> None:
    api = FakeApi(configmaps)
    assert template_problem(api, make_run(**TEMPLATES)) == expected  # type: ignore[arg-type]
    assert api.asked == [("ns", "prompts")]  # one read per ConfigMap, whatever its keys


def test_no_configmap_template_and_started_runs_make_no_call() -> None:
    api = FakeApi({})
    assert template_problem(api, make_run()) is None  # type: ignore[arg-type]
    started = make_run(**TEMPLATES)
    started.status.phase, started.status.stage = Phase.RUNNING, Stage.SELECT
    assert template_problem(api, started) is None  # type: ignore[arg-type]
    assert api.asked == []


def test_a_forbidden_read_skips_the_check() -> None:
    api = FakeApi({}, error=403)
    assert template_problem(api, make_run(**TEMPLATES)) is None  # type: ignore[arg-type]


def test_the_planner_refuses_the_run_then_starts_it_once_repaired() -> None:
    run = make_run(**TEMPLATES)
    problem = "spec.judging.template (configmap://prompts/judge.yaml): ConfigMap prompts not found"
    refused = plan(run, [], T0, template_problem=problem)
    assert (refused.creates, refused.status.phase) == ([], Phase.FAILED)
    failed = {c.type: c for c in refused.status.conditions}[ConditionType.FAILED]
    assert (failed.reason, failed.message) == (Reason.BAD_INPUT, problem)
    stuck = run.model_copy(update={"status": refused.status})
    again = plan(stuck, [], T0, template_problem=problem)
    assert (again.status.phase, again.events, again.creates) == (Phase.FAILED, [], [])
    repaired = plan(stuck, [], T0)
    assert [c.task.stage for c in repaired.creates] == [Stage.SELECT]
