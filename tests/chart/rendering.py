"""Render the chart with Helm's own Go SDK (helm-python-sdk), offline.

``Chart.render`` cannot set Capabilities, so :func:`render` goes through the native
``helm_render`` call with ``kube_version`` and ``api_versions``: the one place that touches the
SDK's private surface. Everything else uses the public API.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import yaml
from helm_python import _native

REPO = Path(__file__).resolve().parents[2]
CHART_DIR = REPO / "charts" / "selftaught"
RELEASE = "selftaught"
NAMESPACE = "selftaught-system"
#: The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest that
#: kubernetes-validate ships schemas for.
KUBE_OLDEST = "1.29.0"
KUBE_NEWEST = kubernetes_validate.latest_version()
PROMETHEUS_OPERATOR = "monitoring.coreos.com/v1"


@dataclass(frozen=True)
class Rendered:
    """One render: the manifests (parsed, in template order) and NOTES.txt."""

    docs: list[dict[str, Any]]
    notes: str

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        return [doc for doc in self.docs if doc["kind"] == kind]

    def one(self, kind: str) -> dict[str, Any]:
        found = self.of_kind(kind)
        assert len(found) == 1, f"expected one {kind}, found {len(found)}"
        return found[0]

    def kinds(self) -> set[str]:
        return {doc["kind"] for doc in self.docs}


def render(
    chart: helm.Chart,
    values: dict[str, Any] | None = None,
    *,
    kube_version: str = KUBE_OLDEST,
    api_versions: Iterable[str] = (),
    namespace: str = NAMESPACE,
) -> Rendered:
    """Render as ``helm template`` would against a cluster with these Capabilities."""
    options = {
        "name": RELEASE,
        "namespace": namespace,
        "kube_version": f"v{kube_version}",
        "api_versions": list(api_versions),
    }
    raw = _native.call_string(
        "helm_render", chart._raw(), json.dumps(values or {}), json.dumps(options)
    )
    files: dict[str, str] = json.loads(raw)
    docs: list[dict[str, Any]] = []
    notes = ""
    for path in sorted(files):
        if path.endswith("NOTES.txt"):
            notes = files[path]
            continue
        docs.extend(doc for doc in yaml.safe_load_all(files[path]) if doc)
    return Rendered(docs=docs, notes=notes)


def pod_specs(rendered: Rendered) -> Iterator[tuple[str, dict[str, Any]]]:
    """(workload name, pod spec) of every pod-bearing manifest."""
    for doc in rendered.docs:
        if doc["kind"] in {"Deployment", "StatefulSet", "DaemonSet", "Job"}:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]
