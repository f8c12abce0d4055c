"""The values matrix the chart tests render: one readable id per situation a user is in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.chart.rendering import NAMESPACE, PROMETHEUS_OPERATOR


@dataclass(frozen=True)
class Case:
    values: dict[str, Any]
    api_versions: tuple[str, ...] = ()
    #: Prometheus Operator kinds the render must contain (and no others).
    monitoring: frozenset[str] = frozenset()
    #: Namespaces the operator is told to watch (empty: all).
    watched: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)


BOTH = frozenset({"ServiceMonitor", "PrometheusRule"})

CASES: dict[str, Case] = {
    "defaults": Case({}),
    "defaults-with-prometheus-operator": Case({}, (PROMETHEUS_OPERATOR,), BOTH),
    "monitoring-forced-on-without-crds": Case(
        {"monitoring": {"serviceMonitor": {"enabled": True}, "prometheusRule": {"enabled": True}}},
        monitoring=BOTH,
    ),
    "monitoring-off-despite-crds": Case(
        {
            "monitoring": {
                "serviceMonitor": {"enabled": False},
                "prometheusRule": {"enabled": False},
                "dashboard": {"enabled": False},
            }
        },
        (PROMETHEUS_OPERATOR,),
    ),
    "only-rules-auto": Case(
        {"monitoring": {"serviceMonitor": {"enabled": False}}},
        (PROMETHEUS_OPERATOR,),
        frozenset({"PrometheusRule"}),
    ),
    "namespaced-release-namespace": Case({"watch": {"scope": "namespaced"}}, watched=(NAMESPACE,)),
    "namespaced-listed": Case(
        {"watch": {"scope": "namespaced", "namespaces": ["team-a", "team-b", "team-a"]}},
        (PROMETHEUS_OPERATOR,),
        BOTH,
        watched=("team-a", "team-b"),
    ),
    "cluster-restricted-to-list": Case(
        {"watch": {"scope": "cluster", "namespaces": ["ml"]}}, watched=("ml",)
    ),
    "custom-images": Case(
        {
            "image": {"repository": "registry.example.com/st/operator", "tag": "1.2.3"},
            "worker": {
                "image": {"repository": "registry.example.com/st/worker", "tag": "1.2.3-cu129"},
                "pushgatewayUrl": "http://pushgateway.monitoring:9091",
            },
            "imagePullSecrets": ["regcred"],
        },
        extra={
            "image": "registry.example.com/st/operator:1.2.3",
            "worker": "registry.example.com/st/worker:1.2.3-cu129",
        },
    ),
    "operator-digest": Case(
        {"image": {"digest": "sha256:" + "ab" * 32}},
        extra={"image": "ghcr.io/selftaught/operator@sha256:" + "ab" * 32},
    ),
    "existing-service-account": Case(
        {"serviceAccount": {"create": False, "name": "ops-sa"}, "rbac": {"create": False}}
    ),
    "peering-hot-standby": Case(
        {"operator": {"replicas": 2, "peering": {"name": "selftaught"}}},
        extra={"peering": "clusterkopfpeerings"},
    ),
    "peering-namespaced": Case(
        {
            "operator": {"replicas": 2, "peering": {"name": "selftaught"}},
            "watch": {"scope": "namespaced", "namespaces": ["team-a", "team-b"]},
        },
        watched=("team-a", "team-b"),
        extra={"peering": "kopfpeerings"},
    ),
}
