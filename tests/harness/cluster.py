"""An emulated cluster: the API emulator, a kubelet and a kubeconfig, started and stopped together.

This is what the ``kube`` fixture yields and what ``python -m tests.harness`` runs.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from tests.harness.apiserver import ApiServer
from tests.harness.faults import FaultInjector, RequestLog
from tests.harness.kubeconfig import write_kubeconfig
from tests.harness.kubelet import Kubelet


class Cluster:
    """``api`` (emulator), ``kubelet``, ``kubeconfig`` path and a ``kubectl()`` helper."""

    def __init__(
        self,
        *,
        port: int = 0,
        kubeconfig: str | Path | None = None,
        max_pods: int = 4,
        bookmark_interval: float = 5.0,
        kubelet: bool = True,
        env: dict[str, str] | None = None,
        shared_volumes: dict[str, Path] | None = None,
        seed_cache: Path | None = None,
        restart_backoff: tuple[float, float] = (1.0, 20.0),
    ) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="emulated-cluster-")
        self.dir = Path(self._tmp.name)
        self.api = ApiServer(port=port, bookmark_interval=bookmark_interval)
        self._kubeconfig = Path(kubeconfig) if kubeconfig else self.dir / "kubeconfig"
        self._want_kubelet = kubelet
        self._max_pods = max_pods
        self._env = env
        self._shared_volumes = dict(shared_volumes or {})
        if seed_cache is not None:
            self._shared_volumes.setdefault("cache", self._node_cache(seed_cache))
        self.kubelet: Kubelet | None = None
        #: first and longest wait before a Deployment pod's container restarts, seconds
        self._restart_backoff = restart_backoff

    def _node_cache(self, seed: Path) -> Path:
        """A model cache that every pod of this cluster shares (its ``cache`` volume), holding
        links to the built tiny judges of ``seed`` (the session's cache): they take minutes to
        build. Anything else a pod caches (models downloaded from S3, keyed by URI) stays in
        this cluster, so a later test's run with the same URIs never reads a stale copy."""
        cache = self.dir / "node-cache"
        cache.mkdir()
        for built in sorted(seed.glob("tiny-judge-*")) if seed.is_dir() else []:
            if built.is_dir():
                (cache / built.name).symlink_to(built)
        return cache

    @property
    def kubeconfig(self) -> Path:
        return self._kubeconfig

    @property
    def faults(self) -> FaultInjector:
        return self.api.faults

    @property
    def requests(self) -> RequestLog:
        return self.api.requests

    def start(self) -> Cluster:
        self.api.start()
        write_kubeconfig(self._kubeconfig, self.api.url)
        self.api.log_root = self.dir / "pods"  # where the kubelet writes each pod's output
        if self._want_kubelet:
            self.kubelet = Kubelet(
                self.api.url,
                max_pods=self._max_pods,
                workdir=self.dir / "pods",
                env=self._env,
                shared_volumes=self._shared_volumes,
                restart_backoff=self._restart_backoff,
            ).start()
        return self

    def stop(self) -> None:
        if self.kubelet is not None:
            self.kubelet.stop()
        self.api.stop()
        self._tmp.cleanup()

    def __enter__(self) -> Cluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = False, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the real kubectl against the emulator (own kubeconfig and cache dir)."""
        argv = [
            "kubectl",
            "--kubeconfig",
            str(self._kubeconfig),
            "--cache-dir",
            str(self.dir / "kubectl-cache"),
            *args,
        ]
        env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
        return subprocess.run(
            argv, input=input, capture_output=True, text=True, check=check, timeout=timeout, env=env
        )
