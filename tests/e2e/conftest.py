"""End-to-end fixtures: an emulated (or, with ``--real-cluster``, a real) cluster, the CRD, and
the real ``selftaught operator`` started as a subprocess against it.

On the emulator the harness kubelet runs each Job's command locally; most tests put it in
"instant" mode with realistic worker summaries as termination messages, so a whole run takes
well under a second. With ``--real-cluster`` (``$KUBECONFIG`` must point at it, the CRD is
applied, a fresh namespace is created per test) the same tests run against real Jobs; the tests
that need fault injection are skipped there.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.harness.fixtures import kube  # noqa: F401 - the emulator fixture
from tests.harness.pod_faults import PodFault

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "selftaughtrun.yaml"
SELFTAUGHT = str(Path(sys.executable).parent / "selftaught")

#: What each stage's worker reports in its termination message (shapes of selftaught.stages).
SUMMARIES: dict[str, dict[str, Any]] = {
    "select": {"instructions": 120, "heldout": 24, "badLines": 0, "read": 150, "seconds": 1.0},
    "pairs": {"pairs": 96, "heldoutPairs": 24, "failed": 0, "seconds": 1.0},
    "judge": {"pairs": 96, "sampled": 384, "kept": 72, "invalid": 5, "seconds": 1.0},
    "train": {"loss": 0.42, "examples": 72, "steps": 5, "seconds": 1.0},
    "evaluate": {"scores": {"heldout": {"accuracy": 0.75, "examples": 24}}, "seconds": 1.0},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--real-cluster",
        action="store_true",
        default=False,
        help="run tests/e2e against the cluster in $KUBECONFIG instead of the emulator",
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class E2E:
    """One test's cluster: kubectl against it, its namespace, and the kubelet if emulated."""

    kubeconfig: Path
    namespace: str
    workdir: Path
    kubelet: Any = None
    api: Any = None
    env: dict[str, str] = field(default_factory=dict)

    @property
    def emulated(self) -> bool:
        return self.kubelet is not None

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        command = [
            "kubectl",
            f"--kubeconfig={self.kubeconfig}",
            f"--cache-dir={self.workdir / 'kube-cache'}",
            *args,
        ]
        result = subprocess.run(
            command, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {result.stderr}\n{result.stdout}")
        return result

    def ns(self, *args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        return self.kubectl(f"--namespace={self.namespace}", *args, **kwargs)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.ns("apply", "-f", "-", input=yaml.safe_dump(manifest))

    def get(self, kind: str, name: str | None = None) -> Any:
        args = [kind] if name is None else [kind, name]
        return json.loads(self.ns("get", *args, "-o", "json").stdout)

    def wait_phase(self, run: str, phase: str, timeout: int = 60) -> dict[str, Any]:
        self.ns(
            "wait",
            f"--for=jsonpath={{.status.phase}}={phase}",
            f"selftaughtrun/{run}",
            f"--timeout={timeout}s",
            timeout=timeout + 10,
        )
        return self.get("selftaughtrun", run)  # type: ignore[no-any-return]

    def instant(self, summaries: dict[str, dict[str, Any]] | None = None) -> None:
        """Every stage's pods succeed at once with a realistic summary (emulator only)."""
        for stage, summary in (summaries or SUMMARIES).items():
            self.kubelet.inject(
                PodFault.INSTANT,
                labels={"selftaught.dev/stage": stage},
                message=json.dumps(summary),
            )

    def require_emulator(self) -> None:
        if not self.emulated:
            pytest.skip("needs the emulator's kubelet fault injection")


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[E2E]:
    if request.config.getoption("--real-cluster", default=False):
        kubeconfig = os.environ.get("KUBECONFIG")
        if not kubeconfig:
            pytest.fail("--real-cluster needs $KUBECONFIG")
        e2e = E2E(Path(kubeconfig), f"selftaught-e2e-{secrets.token_hex(3)}", tmp_path)
        e2e.kubectl("create", "namespace", e2e.namespace)
        e2e.kubectl("apply", "--server-side", "-f", str(CRD))
        try:
            yield e2e
        finally:
            e2e.kubectl("delete", "namespace", e2e.namespace, "--wait=false", check=False)
        return
    yield emulated_e2e(request.getfixturevalue("kube"), tmp_path)


def emulated_e2e(emulated: Any, workdir: Path) -> E2E:
    """An E2E on a started emulator ``Cluster`` (namespace default), with the CRD established."""
    e2e = E2E(emulated.kubeconfig, "default", workdir, kubelet=emulated.kubelet, api=emulated.api)
    e2e.kubectl("apply", "-f", str(CRD))
    e2e.kubectl(
        "wait", "--for=condition=Established", "crd/selftaughtruns.selftaught.dev", "--timeout=20s"
    )
    return e2e


@dataclass
class Operator:
    process: subprocess.Popen[bytes]
    log: Path
    metrics_url: str
    liveness_url: str

    def metrics(self) -> str:
        with urllib.request.urlopen(self.metrics_url, timeout=5) as response:
            return response.read().decode()  # type: ignore[no-any-return]

    def sample(self, name: str, **labels: str) -> float | None:
        """One sample's value from /metrics (None if absent)."""
        for line in self.metrics().splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            head, _, value = line.rpartition(" ")
            if head.split("{")[0] != name:
                continue
            if all(f'{k}="{v}"' in head for k, v in labels.items()):
                return float(value)
        return None


def start_operator(
    e2e: E2E, log: Path, *extra: str, cluster_wide: bool = False, kubeconfig: Path | None = None
) -> Operator:
    """The operator watching ``e2e.namespace`` (``cluster_wide``: every namespace), as the user
    of ``kubeconfig`` (default: ``e2e.kubeconfig``)."""
    metrics_port, liveness_port = free_port(), free_port()
    liveness = f"http://127.0.0.1:{liveness_port}/healthz"
    env = dict(os.environ, KUBECONFIG=str(kubeconfig or e2e.kubeconfig))
    scope = [] if cluster_wide else ["--namespace", e2e.namespace]
    handle = log.open("ab")
    process = subprocess.Popen(
        [
            SELFTAUGHT, "operator", *scope,
            "--metrics-port", str(metrics_port), "--metrics-address", "127.0.0.1",
            "--liveness", liveness, "--resync-seconds", "5", "--relist-seconds", "5",
            "--verbose", *extra,
        ],
        env=env, stdout=handle, stderr=subprocess.STDOUT,
    )  # fmt: skip
    handle.close()
    operator = Operator(process, log, f"http://127.0.0.1:{metrics_port}/metrics", liveness)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"operator exited {process.returncode}:\n{log.read_text()[-3000:]}"
            )
        with contextlib.suppress(OSError), urllib.request.urlopen(liveness, timeout=1) as answer:
            if answer.status == 200:
                return operator
        time.sleep(0.1)
    stop_operator(operator)
    raise AssertionError(f"operator not live after 30 s:\n{log.read_text()[-3000:]}")


def stop_operator(operator: Operator) -> int:
    if operator.process.poll() is None:
        operator.process.send_signal(signal.SIGTERM)
        try:
            operator.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            operator.process.kill()
            operator.process.wait(timeout=10)
    return operator.process.returncode


@pytest.fixture
def operator(cluster: E2E, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Operator]:
    """The real operator as a subprocess; its log is printed when a test fails."""
    running = start_operator(cluster, tmp_path / "operator.log")
    try:
        yield running
    finally:
        code = stop_operator(running)
        failed = getattr(request.node, "rep_call", None)
        if code != 0 or (failed is not None and failed.failed):
            sys.stderr.write(f"--- operator log (exit {code}) ---\n")
            sys.stderr.write(running.log.read_text()[-6000:])
        assert code == 0, f"operator exited {code} on SIGTERM"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{report.when}", report)


def run_manifest(name: str = "demo", **spec: Any) -> dict[str, Any]:
    """A small CPU-only run with file:// storage; ``spec`` overrides top-level spec fields."""
    stage = {"engine": "transformers", "gpus": 0, "cpu": "1", "memory": "1Gi"}
    body: dict[str, Any] = {
        "seedModel": "builtin://tiny-judge",
        "storage": {"uri": "file:///tmp/selftaught-e2e"},
        "instructions": {"source": "builtin://arithmetic", "categories": ["math"]},
        "iterations": 1,
        "stages": {s: dict(stage) for s in SUMMARIES},
    }
    body.update(spec)
    return {
        "apiVersion": "selftaught.dev/v1alpha1",
        "kind": "SelfTaughtRun",
        "metadata": {"name": name},
        "spec": body,
    }
