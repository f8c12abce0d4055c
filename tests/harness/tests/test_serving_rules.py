"""The pure rules behind Deployments on the emulator: port rewriting, rollout steps, probe
thresholds, proxy targets, template hashes and the Deployment's table row."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import ports, proxy, rollout, tables
from tests.harness.builtin_defaults import workload_errors
from tests.harness.probes import Probe, Threshold
from tests.harness.resources import Registry
from tests.harness.store import ApiError

MAPPED = {8000: 41000, 9090: 42000}


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve", "--port", "8000"], ["serve", "--port", "41000"]),
        (["serve", "--port=8000"], ["serve", "--port=41000"]),
        (["serve", "--metrics-port", "9090"], ["serve", "--metrics-port", "42000"]),
        (["serve", "--port", "7000"], ["serve", "--port", "7000"]),  # not a declared port
        (["serve", "--workers", "8000"], ["serve", "--workers", "8000"]),  # not a port flag
        (["serve", "--bind", "0.0.0.0:8000"], ["serve", "--bind", "0.0.0.0:8000"]),
        (["8000", "--port"], ["8000", "--port"]),
    ],
    ids=["flag-space", "flag-equals", "other-port-flag", "undeclared", "not-port", "bind", "head"],
)
def test_args_carrying_a_container_port_name_its_host_port(
    argv: list[str], expected: list[str]
) -> None:
    assert ports.rewrite_args(argv, MAPPED) == expected


def test_only_declared_port_variables_are_rewritten() -> None:
    env = {"PORT": "8000", "METRICS_PORT": "9090", "WORKERS": "8000", "HOST_PORT": "8000"}
    assert ports.rewrite_env(env, MAPPED, declared={"PORT", "METRICS_PORT", "WORKERS"}) == {
        "PORT": "41000",
        "METRICS_PORT": "42000",
        "WORKERS": "8000",
        "HOST_PORT": "8000",  # the host's own, not the container's
    }


def test_host_ports_round_trip_through_the_pod_annotation() -> None:
    container = {"ports": [{"containerPort": 8000, "name": "http"}, {"containerPort": 9090}]}
    mapped = ports.allocate(container)
    assert sorted(mapped) == [8000, 9090]
    assert len(set(mapped.values())) == 2
    pod = {
        "metadata": {"annotations": {ports.HOST_PORTS: ports.annotate(mapped)}},
        "spec": {"containers": [container]},
    }
    assert ports.host_ports(pod) == mapped
    assert ports.container_port(pod, "http") == 8000
    assert ports.container_port(pod, "9090") == 9090
    assert ports.container_port(pod, "metrics") is None


def view(name: str, pod_hash: str, ready: bool = True) -> rollout.PodView:
    return rollout.PodView(name, pod_hash, ready)


def spec(replicas: int, surge: Any = 1, unavailable: Any = 0, kind: str = "") -> dict[str, Any]:
    strategy: dict[str, Any] = {"rollingUpdate": {"maxSurge": surge, "maxUnavailable": unavailable}}
    if kind:
        strategy = {"type": kind}
    return {"replicas": replicas, "strategy": strategy}


@pytest.mark.parametrize(
    ("deployment", "pods", "expected"),
    [
        (spec(2), [], (2, [])),
        (spec(1), [view("old", "a")], (1, [])),
        (spec(1), [view("old", "a"), view("new", "b", ready=False)], (0, [])),
        (spec(1), [view("old", "a"), view("new", "b")], (0, ["old"])),
        (spec(1), [view("old", "a", ready=False)], (1, ["old"])),
        (spec(3, surge=0, unavailable=1), [view(f"o{i}", "a") for i in range(3)], (0, ["o0"])),
        (spec(2, surge="25%", unavailable="25%"), [view("o0", "a"), view("o1", "a")], (1, [])),
        (spec(1, kind="Recreate"), [view("old", "a")], (0, ["old"])),
        (spec(1, kind="Recreate"), [], (1, [])),
        (spec(1), [view("n0", "b"), view("n1", "b")], (0, ["n1"])),
        (spec(0), [view("old", "a"), view("n0", "b")], (0, ["n0", "old"])),
    ],
    ids=[
        "fresh",
        "surge-one-new",
        "wait-for-new-ready",
        "retire-old-once-new-ready",
        "unready-old-goes-at-once",
        "no-surge-one-unavailable",
        "percentages-round-surge-up-unavailable-down",
        "recreate-stops-old-first",
        "recreate-then-starts",
        "scale-down",
        "scale-to-zero",
    ],
)
def test_rollout_next_step(
    deployment: dict[str, Any], pods: list[rollout.PodView], expected: tuple[int, list[str]]
) -> None:
    assert rollout.next_step(deployment, "b", pods) == expected


def test_template_hash_ignores_defaults_and_follows_changes() -> None:
    bare = {"spec": {"containers": [{"name": "c", "image": "i"}]}}
    defaulted = {
        "spec": {
            "restartPolicy": "Always",
            "containers": [
                {
                    "name": "c",
                    "image": "i",
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                    "imagePullPolicy": "IfNotPresent",
                }
            ],
        }
    }
    changed = {"spec": {"containers": [{"name": "c", "image": "j"}]}}
    assert rollout.template_hash(bare) == rollout.template_hash(defaulted)
    assert rollout.template_hash(bare) != rollout.template_hash(changed)
    assert set(rollout.template_hash(bare)) <= set("bcdfghjklmnpqrstvwxz2456789")


@pytest.mark.parametrize(
    ("results", "initial", "flips"),
    [
        ([True], False, [True]),
        ([False, False, False], True, [True, True, False]),
        ([False, True, False, False, False], True, [True, True, True, True, False]),
    ],
    ids=["ready-after-one-success", "dead-after-three-failures", "a-success-resets-the-count"],
)
def test_probe_threshold(results: list[bool], initial: bool, flips: list[bool]) -> None:
    counter = Threshold(Probe("httpGet", 1), initial=initial)
    assert [counter.record(ok) for ok in results] == flips


def test_probe_port_must_be_declared() -> None:
    pod = {"spec": {"containers": [{"ports": [{"containerPort": 8000, "name": "http"}]}]}}
    probe = Probe.from_spec(
        {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 2},
        pod=pod,
        ports={8000: 41000},
    )
    assert probe is not None
    assert (probe.port, probe.path, probe.period, probe.failure_threshold) == (
        41000,
        "/health",
        2,
        3,
    )
    with pytest.raises(ValueError, match="'metrics': not a declared containerPort"):
        Probe.from_spec({"httpGet": {"port": "metrics"}}, pod=pod, ports={8000: 41000})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("web", ("web", "")),
        ("web:http", ("web", "http")),
        ("http:web:80", ("web", "80")),
        ("https:web:", ("web", "")),
    ],
    ids=lambda v: str(v),
)
def test_proxy_names(raw: str, expected: tuple[str, str]) -> None:
    assert proxy.split_name(raw) == expected


def _pod(name: str, ready: bool, app: str = "web") -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"app": app},
            "annotations": {ports.HOST_PORTS: ports.annotate({8000: 41000 + len(name)})},
        },
        "spec": {"containers": [{"ports": [{"name": "http", "containerPort": 8000}]}]},
        "status": {"conditions": [{"type": "Ready", "status": "True" if ready else "False"}]},
    }


def test_service_target_is_a_ready_selected_pod() -> None:
    service = {
        "metadata": {"name": "web"},
        "spec": {
            "selector": {"app": "web"},
            "ports": [{"name": "api", "port": 80, "targetPort": "http"}],
        },
    }
    pods = [_pod("a", False), _pod("bb", True), _pod("ccc", True, app="other")]
    assert proxy.service_target(service, pods, "api") == ("bb", 41002)
    assert proxy.service_target(service, pods, "80") == ("bb", 41002)
    with pytest.raises(ApiError, match='no endpoints available for service "web"'):
        proxy.service_target(service, pods[:1], "")


def test_deployment_table_row_reads_like_kubectl() -> None:
    rt = Registry().get("apps", "v1", "deployments")
    assert rt is not None
    deploy = {
        "metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web", "tier": "x"}},
            "template": {
                "spec": {
                    "containers": [{"name": "a", "image": "i:1"}, {"name": "b", "image": "j:2"}]
                }
            },
        },
        "status": {"readyReplicas": 1, "updatedReplicas": 2},
    }
    table = tables.to_table(rt, [deploy], resource_version="1")
    names = [c["name"] for c in table["columnDefinitions"]]
    assert names == [
        "Name",
        "Ready",
        "Up-to-date",
        "Available",
        "Containers",
        "Images",
        "Selector",
        "Age",
    ]
    cells = table["rows"][0]["cells"]
    assert cells[:7] == ["web", "1/2", 2, 0, "a,b", "i:1,j:2", "app=web,tier=x"]


def _workload(**spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "replicas": 1,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        },
    }
    return {"metadata": {"name": "web"}, "spec": {**base, **spec}}


@pytest.mark.parametrize(
    ("obj", "old", "expected"),
    [
        (_workload(), None, []),
        (_workload(selector=None), None, ["spec.selector: Required value"]),
        (
            _workload(selector={"matchLabels": {"app": "api"}}),
            None,
            [
                'spec.template.metadata.labels: Invalid value: map[string]string{"app":"web"}: '
                "`selector` does not match template `labels`"
            ],
        ),
        (
            _workload(
                selector={"matchLabels": {"app": "web", "v": "2"}},
                template={
                    "metadata": {"labels": {"app": "web", "v": "2"}},
                    "spec": {"containers": [{"name": "c"}]},
                },
            ),
            _workload(),
            ["spec.selector: Invalid value: field is immutable"],
        ),
        (
            _workload(replicas=-1),
            None,
            ["spec.replicas: Invalid value: -1: must be greater than or equal to 0"],
        ),
        (
            _workload(template={"metadata": {"labels": {"app": "web"}}, "spec": {}}),
            None,
            ["spec.template.spec.containers: Required value"],
        ),
    ],
    ids=["valid", "no-selector", "selector-mismatch", "selector-immutable", "negative", "empty"],
)
def test_workload_validation(
    obj: dict[str, Any], old: dict[str, Any] | None, expected: list[str]
) -> None:
    rt = Registry().get("apps", "v1", "deployments")
    assert rt is not None
    assert [str(e) for e in workload_errors(rt, obj, old)] == expected
