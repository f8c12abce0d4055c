"""The Helm chart, rendered by Helm's Go SDK across a matrix of values and Kubernetes versions.

Every rendered manifest must pass the Kubernetes OpenAPI schema in strict mode (unknown fields
are errors) for the oldest and newest supported versions; the Prometheus Operator kinds, absent
from those schemas, get a structural check of their own.
"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from selftaught.cli import build_parser, operator_config
from selftaught.observability import alerts
from tests.chart.cases import CASES
from tests.chart.rendering import (
    CHART_DIR,
    KUBE_NEWEST,
    KUBE_OLDEST,
    NAMESPACE,
    PROMETHEUS_OPERATOR,
    REPO,
    render,
)


def _validate_monitoring(doc: dict[str, Any]) -> None:
    """monitoring.coreos.com kinds are not in kubernetes-validate's schemas: check the fields
    the Prometheus Operator needs, and that the rules are exactly the generated ones."""
    assert doc["apiVersion"] == PROMETHEUS_OPERATOR
    assert doc["metadata"]["name"]
    assert doc["metadata"]["namespace"]
    spec = doc["spec"]
    if doc["kind"] == "ServiceMonitor":
        assert set(spec) == {"jobLabel", "namespaceSelector", "selector", "endpoints"}
        assert spec["selector"]["matchLabels"]
        for endpoint in spec["endpoints"]:
            assert endpoint["port"] == "metrics"
            assert endpoint["path"] == "/metrics"
            assert endpoint["honorLabels"] is True, "run `namespace` labels must survive"
    elif doc["kind"] == "PrometheusRule":
        assert spec == alerts.rule_groups()
    else:  # pragma: no cover - a new kind needs its own check
        pytest.fail(f"no structural check for {doc['kind']}")


def _validate_peering(doc: dict[str, Any]) -> None:
    """kopf.dev kinds are not in kubernetes-validate's schemas either: kopf needs the name, and
    a namespace exactly for the namespaced kind; it writes everything else itself."""
    assert doc["apiVersion"] == "kopf.dev/v1"
    assert set(doc) == {"apiVersion", "kind", "metadata"}
    assert doc["metadata"]["name"] == "selftaught"
    assert ("namespace" in doc["metadata"]) == (doc["kind"] == "KopfPeering")
    assert doc["kind"] in {"KopfPeering", "ClusterKopfPeering"}


@pytest.mark.parametrize("kube", [KUBE_OLDEST, KUBE_NEWEST])
@pytest.mark.parametrize("case_id", list(CASES))
def test_every_manifest_is_valid(chart: helm.Chart, case_id: str, kube: str) -> None:
    case = CASES[case_id]
    rendered = render(chart, case.values, kube_version=kube, api_versions=case.api_versions)
    assert rendered.docs
    for doc in rendered.docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            _validate_monitoring(doc)
        elif doc["apiVersion"].startswith("kopf.dev/"):
            _validate_peering(doc)
        else:
            kubernetes_validate.validate(doc, kube, strict=True)
    monitoring = rendered.kinds() & {"ServiceMonitor", "PodMonitor", "PrometheusRule"}
    assert monitoring == case.monitoring


@pytest.mark.parametrize("case_id", list(CASES))
def test_operator_watches_the_configured_namespaces(chart: helm.Chart, case_id: str) -> None:
    case = CASES[case_id]
    deployment = render(chart, case.values).one("Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "operator"
    assert "--metrics-port=9090" in args
    watched = [arg.removeprefix("--namespace=") for arg in args if arg.startswith("--namespace=")]
    assert watched == list(case.watched)
    # The rendered arguments and env are what the generated flags and settings accept.
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]
           ["env"] if "value" in e}  # fmt: skip
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        config = operator_config(build_parser().parse_args(args))
    assert config.namespaces == tuple(case.watched)
    assert config.metrics_port == 9090
    assert config.jobs.worker_image == env["SELFTAUGHT_WORKER_IMAGE"]


def test_namespaced_mode_grants_write_access_only_in_watched_namespaces(
    chart: helm.Chart,
) -> None:
    rendered = render(chart, CASES["namespaced-listed"].values)
    roles = rendered.of_kind("Role")
    bindings = rendered.of_kind("RoleBinding")
    assert sorted(role["metadata"]["namespace"] for role in roles) == ["team-a", "team-b"]
    assert sorted(b["metadata"]["namespace"] for b in bindings) == ["team-a", "team-b"]
    for binding in bindings:
        assert binding["roleRef"] == {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "Role",
            "name": roles[0]["metadata"]["name"],
        }
        assert binding["subjects"][0]["namespace"] == NAMESPACE
    # The only cluster-wide grant left is kopf's read-only scanning.
    (cluster_role,) = rendered.of_kind("ClusterRole")
    assert cluster_role["metadata"]["name"].endswith("-scan")
    assert {verb for rule in cluster_role["rules"] for verb in rule["verbs"]} == {"list", "watch"}


def test_cluster_mode_binds_one_cluster_role(chart: helm.Chart) -> None:
    rendered = render(chart)
    assert not rendered.of_kind("Role")
    assert not rendered.of_kind("RoleBinding")
    names = sorted(role["metadata"]["name"] for role in rendered.of_kind("ClusterRole"))
    assert names == ["selftaught", "selftaught-scan"]
    bound = sorted(b["roleRef"]["name"] for b in rendered.of_kind("ClusterRoleBinding"))
    assert bound == names


def test_existing_service_account_and_no_rbac(chart: helm.Chart) -> None:
    rendered = render(chart, CASES["existing-service-account"].values)
    assert not rendered.kinds() & {"ServiceAccount", "ClusterRole", "Role", "RoleBinding"}
    spec = rendered.one("Deployment")["spec"]["template"]["spec"]
    assert spec["serviceAccountName"] == "ops-sa"


@pytest.mark.parametrize("case_id", ["defaults", "custom-images", "operator-digest"])
def test_images(chart: helm.Chart, case_id: str) -> None:
    case = CASES[case_id]
    app_version = chart.metadata["appVersion"]
    pod = render(chart, case.values).one("Deployment")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {item["name"]: item.get("value") for item in container["env"]}
    expected_image = case.extra.get("image", f"ghcr.io/selftaught/operator:{app_version}")
    expected_worker = case.extra.get("worker", f"ghcr.io/selftaught/worker:{app_version}")
    assert container["image"] == expected_image
    assert env["SELFTAUGHT_WORKER_IMAGE"] == expected_worker
    if case_id == "custom-images":
        assert env["SELFTAUGHT_PUSHGATEWAY_URL"] == "http://pushgateway.monitoring:9091"
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    else:
        assert "SELFTAUGHT_PUSHGATEWAY_URL" not in env


def test_operator_deployment_shape(chart: helm.Chart) -> None:
    rendered = render(chart)
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"metrics": 9090, "health": 8080}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]["memory"]
    service = rendered.one("Service")
    assert service["spec"]["ports"][0]["targetPort"] == "metrics"
    selector = service["spec"]["selector"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert selector.items() <= pod_labels.items()
    assert service["metadata"]["labels"]["selftaught.dev/scrape-job"] == "selftaught-operator"


@pytest.mark.parametrize("case_id", ["peering-hot-standby", "peering-namespaced"])
def test_peering_runs_replicas_that_differ_in_priority(chart: helm.Chart, case_id: str) -> None:
    """kopf freezes replicas of equal priority: each pod derives its own (``--priority auto``),
    and a rolling update keeps one replica up while the other is replaced."""
    case = CASES[case_id]
    rendered = render(chart, case.values)
    deployment = rendered.one("Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[-3:] == ["--peering=selftaught", "--priority=auto", "--peering-lifetime=60"]
    peerings = [d for d in rendered.docs if d["apiVersion"] == "kopf.dev/v1"]
    if case.watched:  # one KopfPeering per watched namespace, where kopf looks for it
        assert sorted(d["metadata"]["namespace"] for d in peerings) == sorted(case.watched)
        assert {d["kind"] for d in peerings} == {"KopfPeering"}
    else:
        assert [d["kind"] for d in peerings] == ["ClusterKopfPeering"]


def test_several_replicas_without_peering_are_refused(chart: helm.Chart) -> None:
    with pytest.raises(helm.HelmValuesError) as raised:
        chart.validate_schema({"operator": {"replicas": 2}})
    assert "/operator/peering/name" in str(raised.value)


def test_service_monitor_selects_the_metrics_service(chart: helm.Chart) -> None:
    rendered = render(chart, api_versions=[PROMETHEUS_OPERATOR])
    monitor = rendered.one("ServiceMonitor")
    service = rendered.one("Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["jobLabel"] in service["metadata"]["labels"]
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}


def test_dashboard_configmap_carries_the_generated_dashboard(chart: helm.Chart) -> None:
    rendered = render(chart, {"monitoring": {"dashboard": {"labels": {"team": "ml"}}}})
    (configmap,) = rendered.of_kind("ConfigMap")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["labels"]["team"] == "ml"
    committed = (CHART_DIR / "dashboards" / "selftaught.json").read_text()
    assert configmap["data"]["selftaught.json"] == committed.rstrip("\n")


def test_dashboard_can_live_in_grafanas_namespace(chart: helm.Chart) -> None:
    values = {"monitoring": {"dashboard": {"namespace": "grafana"}}}
    (configmap,) = render(chart, values).of_kind("ConfigMap")
    assert configmap["metadata"]["namespace"] == "grafana"


def test_notes_tell_the_next_step(chart: helm.Chart) -> None:
    notes = render(chart).notes
    assert "rollout status deployment/selftaught" in notes
    assert "kubectl get selftaughtruns" in notes
    assert "kubectl apply --server-side -f" in notes
    assert "crds/selftaughtrun.yaml" in notes
    namespaced = render(chart, CASES["namespaced-listed"].values).notes
    assert "team-a, team-b" in namespaced


# ------------------------------------------------------------------------------- the CRD


def test_chart_crd_is_a_byte_equal_copy_of_the_repository_crd(chart: helm.Chart) -> None:
    chart_crd = CHART_DIR / "crds" / "selftaughtrun.yaml"
    assert not chart_crd.is_symlink(), "helm package does not follow symlinks"
    assert chart_crd.read_bytes() == (REPO / "crds" / "selftaughtrun.yaml").read_bytes(), (
        "run: python -m selftaught.observability"
    )
    (loaded,) = chart.crds
    assert loaded["filename"].endswith("crds/selftaughtrun.yaml")
    assert yaml.safe_load(loaded["data"])["metadata"]["name"] == "selftaughtruns.selftaught.dev"


def test_crd_is_valid(chart: helm.Chart) -> None:
    crd = yaml.safe_load((CHART_DIR / "crds" / "selftaughtrun.yaml").read_text())
    for kube in (KUBE_OLDEST, KUBE_NEWEST):
        kubernetes_validate.validate(crd, kube, strict=True)


# ----------------------------------------------------------------- lint, schema, package


@pytest.mark.parametrize(
    "values",
    [{}, CASES["namespaced-listed"].values, CASES["custom-images"].values],
    ids=["defaults", "namespaced", "custom-images"],
)
def test_strict_lint_is_clean(values: dict[str, Any]) -> None:
    report = helm.lint(CHART_DIR, values=values, strict=True, namespace=NAMESPACE)
    assert report["errors"] == []
    # Severity 1 is "info" (e.g. "icon is recommended"); warnings and errors fail.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_declared_minimum_kubernetes_is_the_oldest_tested(chart: helm.Chart) -> None:
    """``helm install`` refuses older clusters through kubeVersion (offline rendering and lint
    do not check it), so it must name the oldest version these tests validate against."""
    assert chart.metadata["kubeVersion"] == f">={KUBE_OLDEST}-0"


BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "unknown-top-level-key": ({"replicaCount": 2}, "replicaCount"),
    "unknown-nested-key": ({"image": {"name": "x"}}, "name"),
    "typo-in-monitoring": ({"monitoring": {"serviceMonitors": {}}}, "serviceMonitors"),
    "tag-not-a-string": ({"image": {"tag": 1.0}}, "/image/tag"),
    "bad-scope": ({"watch": {"scope": "global"}}, "/watch/scope"),
    "namespaces-not-a-list": ({"watch": {"namespaces": "ml"}}, "/watch/namespaces"),
    "bad-namespace-name": ({"watch": {"namespaces": ["ML_Team"]}}, "/watch/namespaces/0"),
    "enabled-not-auto-or-bool": (
        {"monitoring": {"serviceMonitor": {"enabled": "yes"}}},
        "/monitoring/serviceMonitor/enabled",
    ),
    "port-out-of-range": ({"metrics": {"port": 70000}}, "/metrics/port"),
    "bad-digest": ({"image": {"digest": "latest"}}, "/image/digest"),
    "bad-pushgateway-url": ({"worker": {"pushgatewayUrl": "pushgateway:9091"}}, "pushgatewayUrl"),
}


@pytest.mark.parametrize("case_id", list(BAD_VALUES))
def test_schema_rejects_bad_values_naming_the_key(chart: helm.Chart, case_id: str) -> None:
    values, key = BAD_VALUES[case_id]
    with pytest.raises(helm.HelmValuesError) as raised:
        chart.validate_schema(values)
    assert key in str(raised.value)
    # Rendering (what `helm install` does) refuses the same values.
    with pytest.raises(helm.HelmValuesError):
        render(chart, values)


def test_schema_accepts_every_documented_default(chart: helm.Chart) -> None:
    chart.validate_schema(chart.values)
    chart.validate_schema({})


def test_package_and_reload(chart: helm.Chart, tmp_path: Any) -> None:
    archive = helm.package(CHART_DIR, destination=tmp_path)
    assert archive.endswith(f"selftaught-{chart.version}.tgz")
    with helm.Chart.load(archive) as packaged:
        assert packaged.metadata == chart.metadata
        assert [crd["data"] for crd in packaged.crds] == [crd["data"] for crd in chart.crds]
        names = {item["name"] for item in packaged.files}
        assert {"dashboards/selftaught.json", "rules/selftaught.rules.yaml"} <= names
        for values in ({}, CASES["namespaced-listed"].values):
            assert render(packaged, values, api_versions=[PROMETHEUS_OPERATOR]) == render(
                chart, values, api_versions=[PROMETHEUS_OPERATOR]
            )
