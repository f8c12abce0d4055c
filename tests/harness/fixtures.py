"""pytest fixtures for an emulated cluster. Import them into a conftest::

    from tests.harness.fixtures import kube, kube_client, kubectl  # noqa: F401

``kube`` yields a started ``Cluster`` (``.api``, ``.kubelet``, ``.kubeconfig``, ``.kubectl()``,
``.faults``, ``.requests``) and points ``$KUBECONFIG`` -- and the kubernetes client's default
location, which it reads once at import -- at it, so kopf's default login and
``kubernetes.config.load_kube_config()`` both find the emulator. Pods' ``cache`` volume (the
model cache) is one directory per cluster with links to ``$SELFTAUGHT_CACHE``'s built tiny
judges (``Cluster(seed_cache=...)``), so pods do not rebuild them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness.cluster import Cluster


@pytest.fixture
def kube(monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    """A fresh emulator + kubelet per test (starts in ~0.1 s)."""
    import kubernetes.config.kube_config as kube_config

    cache = os.environ.get("SELFTAUGHT_CACHE")
    with Cluster(bookmark_interval=1.0, seed_cache=Path(cache) if cache else None) as cluster:
        monkeypatch.setenv("KUBECONFIG", str(cluster.kubeconfig))
        monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(cluster.kubeconfig))
        yield cluster


@pytest.fixture
def kube_client(kube: Cluster) -> Iterator[object]:
    """A ``kubernetes.client.ApiClient`` for the emulator (closed after the test)."""
    import kubernetes

    client = kubernetes.config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(kube.kubeconfig)
    )
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def kubectl(kube: Cluster) -> Callable[..., subprocess.CompletedProcess[str]]:
    """``kubectl("get", "pods")`` -> CompletedProcess, against the emulator."""
    return kube.kubectl
