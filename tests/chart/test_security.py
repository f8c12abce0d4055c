"""Security properties of every render: the restricted Pod Security Standard on the operator pod
and least-privilege RBAC (no wildcards, exactly the verbs the controller needs)."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from tests.chart.cases import CASES
from tests.chart.rendering import PROMETHEUS_OPERATOR, pod_specs, render

RBAC_KINDS = {"ClusterRole", "Role"}

#: What the controller does, resource by resource (see the comment in templates/_helpers.tpl;
#: tests/chart/test_rbac_covers_calls.py derives the same from the operator's real calls).
CONTROLLER_NEEDS: dict[tuple[str, str], set[str]] = {
    ("selftaught.dev", "selftaughtruns"): {"get", "list", "watch"},
    ("selftaught.dev", "selftaughtruns/status"): {"patch"},
    ("batch", "jobs"): {"create", "list", "watch", "delete"},
    ("", "pods"): {"list", "watch"},
    ("", "services"): {"create", "get", "patch", "delete"},
    ("apps", "deployments"): {"get", "list", "watch", "create", "patch", "delete"},
    ("", "events"): {"create"},
    ("", "configmaps"): {"get"},  # a run's configmap:// templates, checked before its first Job
}
#: kopf's cluster-wide observers (kopf/_core/reactor/observation.py): discovery only. Namespaces
#: are observed only when the operator watches a list of them, not the whole cluster.
SCANNING_NEEDS: dict[tuple[str, str], set[str]] = {
    ("apiextensions.k8s.io", "customresourcedefinitions"): {"list", "watch"},
}
NAMESPACE_SCANNING: dict[tuple[str, str], set[str]] = {("", "namespaces"): {"list", "watch"}}
PEERING_NEEDS = {"list", "watch", "patch"}


def _grants(role: dict[str, Any]) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


@pytest.mark.parametrize("case_id", list(CASES))
def test_rbac_has_no_wildcards(chart: helm.Chart, case_id: str) -> None:
    rendered = render(chart, CASES[case_id].values, api_versions=[PROMETHEUS_OPERATOR])
    for role in rendered.docs:
        if role["kind"] not in RBAC_KINDS:
            continue
        for rule in role["rules"]:
            for key in ("apiGroups", "resources", "verbs"):
                assert "*" not in rule.get(key, []), f"{role['metadata']['name']}: {rule}"
            assert "nonResourceURLs" not in rule
            assert "resourceNames" not in rule or rule["resourceNames"]


@pytest.mark.parametrize(
    "case_id",
    [
        "defaults",
        "namespaced-listed",
        "namespaced-release-namespace",
        "cluster-restricted-to-list",
        "peering-hot-standby",
        "peering-namespaced",
    ],
)
def test_rbac_grants_exactly_what_the_operator_needs(chart: helm.Chart, case_id: str) -> None:
    case = CASES[case_id]
    rendered = render(chart, case.values)
    # With peering, kopf also lists, watches and patches the peering object (the calls
    # tests/reliability/test_peering.py records): cluster-wide, or in each watched namespace.
    peering = (
        {("kopf.dev", case.extra["peering"]): PEERING_NEEDS} if "peering" in case.extra else {}
    )
    for role in rendered.docs:
        if role["kind"] not in RBAC_KINDS:
            continue
        scan = role["metadata"]["name"].endswith("-scan")
        watched = case.watched
        expected = (
            {**SCANNING_NEEDS, **(NAMESPACE_SCANNING if watched else {})}
            if scan
            else {**CONTROLLER_NEEDS, **peering}
        )
        assert _grants(role) == expected, role["metadata"]["name"]
        # No access to Secrets, ever: workers get credentials by reference, the operator never.
        assert not any(resource == "secrets" for _, resource in _grants(role))


@pytest.mark.parametrize("case_id", list(CASES))
def test_operator_pod_meets_restricted_pod_security(chart: helm.Chart, case_id: str) -> None:
    """The checks of the 'restricted' Pod Security Standard, plus the chart's own hardening."""
    specs = list(pod_specs(render(chart, CASES[case_id].values)))
    assert len(specs) == 1
    _, pod = specs[0]
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        assert not pod.get(key)
    pod_context = pod["securityContext"]
    assert pod_context["runAsNonRoot"] is True
    assert pod_context["runAsUser"] == 1000
    assert pod_context["seccompProfile"] == {"type": "RuntimeDefault"}
    for volume in pod["volumes"]:
        allowed = {"configMap", "emptyDir", "projected", "secret", "downwardAPI"}
        assert set(volume) - {"name"} <= allowed, volume
    assert {v["name"]: v for v in pod["volumes"]}["tmp"]["emptyDir"]
    for container in pod["containers"] + pod.get("initContainers", []):
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True
        assert context["runAsNonRoot"] is True
        assert context.get("runAsUser", pod_context["runAsUser"]) != 0
        assert not context.get("privileged")
        assert context["capabilities"]["drop"] == ["ALL"]
        assert set(context["capabilities"].get("add", [])) <= {"NET_BIND_SERVICE"}
        assert context["seccompProfile"]["type"] in {"RuntimeDefault", "Localhost"}
        assert not any(port.get("hostPort") for port in container.get("ports", []))
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
        assert "/tmp" in mounts
