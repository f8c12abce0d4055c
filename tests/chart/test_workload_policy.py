"""The chart's optional workload policy: a ValidatingAdmissionPolicy and the operator's flags.

Rendered with Helm's own SDK, validated against Kubernetes' schemas, and its CEL evaluated
(cel-python: the policy uses portable CEL only) on the runs it must admit and refuse, with the
same verdicts as the operator's own check (:func:`selftaught.policy.refusal`).
"""

from __future__ import annotations

from typing import Any

import celpy
import helm_python as helm
import kubernetes_validate
import pytest
from celpy.adapter import json_to_cel

from selftaught.api import RunSpec
from selftaught.policy import WorkloadPolicy, refusal
from selftaught.validation import admit
from tests.chart.rendering import KUBE_NEWEST, KUBE_OLDEST, render

PREFIXES = ["registry.example.com/ml/", "ghcr.io/selftaught/worker:"]
ACCOUNTS = ["selftaught-worker"]
VALUES = {
    "policy": {
        "enabled": True,
        "allowedImagePrefixes": PREFIXES,
        "allowedServiceAccounts": ACCOUNTS,
        "namespaceSelector": {"matchLabels": {"team": "ml"}},
    }
}


def test_off_by_default(chart: helm.Chart) -> None:
    rendered = render(chart, {}, kube_version=KUBE_NEWEST)
    assert not rendered.of_kind("ValidatingAdmissionPolicy")
    args = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not [a for a in args if a.startswith("--allowed-")]


def test_enabled_renders_a_valid_policy_binding_and_operator_flags(chart: helm.Chart) -> None:
    rendered = render(chart, VALUES, kube_version=KUBE_NEWEST)
    policy = rendered.one("ValidatingAdmissionPolicy")
    binding = rendered.one("ValidatingAdmissionPolicyBinding")
    for doc in (policy, binding):
        kubernetes_validate.validate(doc, KUBE_NEWEST, strict=True)
    assert binding["spec"]["policyName"] == policy["metadata"]["name"]
    assert binding["spec"]["validationActions"] == ["Deny"]
    assert binding["spec"]["matchResources"]["namespaceSelector"] == {"matchLabels": {"team": "ml"}}
    args = rendered.one("Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    assert [a for a in args if a.startswith("--allowed-")] == [
        "--allowed-image-prefix=registry.example.com/ml/",
        "--allowed-image-prefix=ghcr.io/selftaught/worker:",
        "--allowed-service-account=selftaught-worker",
    ]


def test_enabled_on_a_cluster_without_the_v1_api_fails_with_a_reason(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmRenderError, match=r"policy\.enabled needs Kubernetes >= 1\.30"):
        render(chart, VALUES, kube_version=KUBE_OLDEST)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        pytest.param({"policy": {"enabled": "yes"}}, "/policy/enabled", id="enabled-not-bool"),
        pytest.param(
            {"policy": {"allowedServiceAccounts": ["Bad SA"]}},
            "/policy/allowedServiceAccounts/0",
            id="account-not-a-name",
        ),
        pytest.param(
            {"policy": {"allowedImagePrefixes": ['a" || true']}},
            "/policy/allowedImagePrefixes/0",
            id="prefix-with-a-quote",
        ),
        pytest.param({"policy": {"allowed": []}}, "allowed", id="unknown-key"),
    ],
)
def test_schema_rejects_bad_policy_values(
    chart: helm.Chart, values: dict[str, Any], key: str
) -> None:
    with pytest.raises(helm.HelmValuesError) as raised:
        chart.validate_schema(values)
    assert key in str(raised.value)


def evaluate(policy: dict[str, Any], obj: dict[str, Any]) -> list[str]:
    """The messages of the policy's failed validations for ``obj``, evaluated as the API
    server does: variables first (each may use the ones before), then every validation."""
    env = celpy.Environment()
    variables: dict[str, Any] = {}
    activation: dict[str, Any] = {"object": json_to_cel(obj)}
    for variable in policy["spec"]["variables"]:
        program = env.program(env.compile(variable["expression"]))
        variables[variable["name"]] = program.evaluate(
            {**activation, "variables": celpy.celtypes.MapType(variables)}
        )
    activation["variables"] = celpy.celtypes.MapType(variables)
    failed = []
    for validation in policy["spec"]["validations"]:
        program = env.program(env.compile(validation["expression"]))
        if not bool(program.evaluate(activation)):
            failed.append(validation["message"])
    return failed


def run(**spec: Any) -> dict[str, Any]:
    """A run as the API server hands it to admission policies: pruned and defaulted."""
    document = {
        "apiVersion": "selftaught.dev/v1alpha1",
        "kind": "SelfTaughtRun",
        "metadata": {"name": "r", "namespace": "ml"},
        "spec": {
            "seedModel": "builtin://tiny-judge",
            "storage": {"uri": "s3://bucket/runs"},
            "instructions": {"source": "builtin://arithmetic"},
            **spec,
        },
    }
    admitted = admit(document)
    assert admitted.allowed, admitted.errors
    return admitted.document


RUNS: list[tuple[str, dict[str, Any], bool]] = [
    ("names-nothing", run(), True),
    ("allowed-worker-image", run(worker={"image": "registry.example.com/ml/w:1"}), True),
    (
        "allowed-stage-image",
        run(stages={"judge": {"image": "ghcr.io/selftaught/worker:0.2"}}),
        True,
    ),
    ("allowed-account", run(worker={"serviceAccountName": "selftaught-worker"}), True),
    ("foreign-worker-image", run(worker={"image": "docker.io/evil/x:1"}), False),
    ("lookalike-prefix", run(worker={"image": "registry.example.com/ml-evil/x:1"}), False),
    ("foreign-train-image", run(stages={"train": {"image": "docker.io/evil/x:1"}}), False),
    ("foreign-account", run(worker={"serviceAccountName": "admin"}), False),
]


@pytest.mark.parametrize(("obj", "allowed"), [pytest.param(o, a, id=i) for i, o, a in RUNS])
def test_the_admission_policy_and_the_operator_agree(
    chart: helm.Chart, obj: dict[str, Any], allowed: bool
) -> None:
    policy = render(chart, VALUES, kube_version=KUBE_NEWEST).one("ValidatingAdmissionPolicy")
    assert (evaluate(policy, obj) == []) == allowed
    operator = WorkloadPolicy(tuple(PREFIXES), tuple(ACCOUNTS))
    assert (refusal(RunSpec.model_validate(obj["spec"]), operator) is None) == allowed


def test_empty_lists_allow_everything(chart: helm.Chart) -> None:
    values = {"policy": {"enabled": True}}
    policy = render(chart, values, kube_version=KUBE_NEWEST).one("ValidatingAdmissionPolicy")
    obj = run(worker={"image": "docker.io/any/x:1", "serviceAccountName": "any"})
    assert evaluate(policy, obj) == []
