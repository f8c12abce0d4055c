"""Security, proven on what an e2e run leaves behind, not on the builder alone.

* Every Job the operator created is restricted-PSS compliant (its pod template, as recorded).
* S3 credentials travel only as Secret references: with known fake values in a Secret, a run
  that succeeds and a run whose real worker is refused by a real SeaweedFS leave the values
  nowhere -- status, Events, operator log, worker logs, termination messages, metrics, Job
  manifests -- while the Secret's *name* is in the Jobs.
* The operator never reads Secrets: the only Secret reads in the request log are the kubelet's,
  one per pod it actually ran.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.e2e.conftest import E2E, run_manifest
from tests.integration.seaweedfs import SeaweedFS
from tests.reliability.conftest import Operators, instant_stages, jobs, pods_of

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ACCESS_KEY = "AKIAFAKE0123456789"
SECRET_KEY = "s3cr3t-fake-value"
SECRET_NAME = "s3-creds"


@pytest.fixture
def weed() -> Iterator[SeaweedFS]:
    server = SeaweedFS(buckets=("artifacts",))
    with server:
        yield server


def s3_run(name: str, endpoint: str) -> dict[str, Any]:
    return run_manifest(
        name,
        storage={
            "uri": "s3://artifacts/runs",
            "s3": {
                "endpoint": endpoint,
                "addressingStyle": "path",
                "accessKeyId": {"name": SECRET_NAME, "key": "id"},
                "secretAccessKey": {"name": SECRET_NAME, "key": "secret"},
            },
        },
        # On S3 too: the worker meets the refused credentials when it reads the pool.
        instructions={"source": "s3://artifacts/pools/pool.jsonl", "categories": ["math"]},
    )


def restricted_violations(job: dict[str, Any]) -> list[str]:
    """The restricted Pod Security Standard's checks on a Job's pod template."""
    pod = job["spec"]["template"]["spec"]
    name = job["metadata"]["name"]
    found = [f"{name}: {k}" for k in ("hostNetwork", "hostPID", "hostIPC") if pod.get(k)]
    context = pod.get("securityContext") or {}
    allowed = {"configMap", "emptyDir", "projected", "secret", "downwardAPI",
               "persistentVolumeClaim", "ephemeral", "csi"}  # fmt: skip
    for volume in pod.get("volumes") or []:
        if set(volume) - {"name"} - allowed:
            found.append(f"{name}: volume {volume['name']} of a forbidden type")
    if pod.get("automountServiceAccountToken") is not False:
        found.append(f"{name}: service account token mounted")
    for container in pod["containers"] + (pod.get("initContainers") or []):
        sc = container.get("securityContext") or {}
        where = f"{name}/{container['name']}"
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{where}: allowPrivilegeEscalation")
        if sc.get("privileged"):
            found.append(f"{where}: privileged")
        if not (sc.get("runAsNonRoot") or context.get("runAsNonRoot")):
            found.append(f"{where}: runAsNonRoot")
        if sc.get("runAsUser", context.get("runAsUser")) == 0:
            found.append(f"{where}: runAsUser 0")
        if (sc.get("capabilities") or {}).get("drop") != ["ALL"]:
            found.append(f"{where}: capabilities not dropped")
        if set((sc.get("capabilities") or {}).get("add") or []) - {"NET_BIND_SERVICE"}:
            found.append(f"{where}: capabilities added")
        seccomp = (sc.get("seccompProfile") or context.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{where}: seccompProfile {seccomp}")
        if any(port.get("hostPort") for port in container.get("ports") or []):
            found.append(f"{where}: hostPort")
    return found


def test_no_secret_value_anywhere_and_jobs_are_restricted(
    cluster: E2E, operators: Operators, weed: SeaweedFS, ledger: Callable[..., None]
) -> None:
    started = time.monotonic()
    cluster.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME},
            "stringData": {"id": ACCESS_KEY, "secret": SECRET_KEY},
        }
    )
    secret_created = time.monotonic()
    instant_stages(cluster, 1, run="sealed")  # "leaky" runs its real select worker
    operator = operators.start()
    cluster.apply(s3_run("sealed", weed.endpoint.url))
    cluster.apply(s3_run("leaky", weed.endpoint.url))
    cluster.wait_phase("sealed", "Succeeded", timeout=60)
    leaky = cluster.wait_phase("leaky", "Failed", timeout=120)["status"]
    failed = {c["type"]: c for c in leaky["conditions"]}["Failed"]
    assert failed["reason"] == "BadInput", failed  # refused credentials: exit 2, not retried
    assert "s3://artifacts/pools/pool.jsonl" in failed["message"]

    # Restricted PSS on every Job recorded in the run, and credentials only as references.
    recorded = jobs(cluster, "sealed") + jobs(cluster, "leaky")
    assert len(recorded) == 7
    assert [v for job in recorded for v in restricted_violations(job)] == []
    for job in recorded:
        env = job["spec"]["template"]["spec"]["containers"][0].get("env") or []
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in env if "valueFrom" in e
                and "secretKeyRef" in e["valueFrom"]}  # fmt: skip
        assert refs["AWS_ACCESS_KEY_ID"] == {"name": SECRET_NAME, "key": "id"}
        assert refs["AWS_SECRET_ACCESS_KEY"] == {"name": SECRET_NAME, "key": "secret"}

    # Everywhere a value could leak to.
    pods = [p for job in recorded for p in pods_of(cluster, job["metadata"]["name"])]
    worker_logs = [
        path.read_text(errors="replace")
        for p in pods
        if (path := cluster.kubelet.log_path(p["metadata"]["name"])) is not None
    ]
    assert worker_logs, "the leaky run's worker ran for real and logged"
    places = {
        "status": cluster.ns("get", "selftaughtruns", "-o", "json").stdout,
        "events": cluster.ns("get", "events", "-o", "json").stdout,
        "describe": cluster.ns("describe", "selftaughtruns").stdout,
        "operator log": operators.logs(),
        "worker logs": "\n".join(worker_logs),
        "termination messages": json.dumps([p["status"] for p in pods]),
        "metrics": operator.metrics(),
        "Job manifests": cluster.ns("get", "jobs", "-o", "json").stdout,
    }
    for where, text in places.items():
        assert text.strip(), f"{where}: nothing captured, the check would prove nothing"
        for value in (ACCESS_KEY, SECRET_KEY):
            assert value not in text, f"{value} leaked into {where}"
    assert SECRET_NAME in places["Job manifests"]

    # The operator never reads Secrets: the kubelet read it once, for the one pod it ran.
    reads = [
        r
        for r in cluster.api.requests.records()
        if r.resource == "secrets" and r.at >= secret_created
    ]
    ran = sum(1 for p in pods if cluster.kubelet.log_path(p["metadata"]["name"]))
    assert [r.verb for r in reads] == ["get"] * ran
    assert operators.stop(operator) == 0
    ledger(
        "fake S3 credentials in a Secret; 1 run Succeeded, 1 real worker refused",
        trials=2,
        lost=0,
        duplicates=0,
        outcome=f"values found in 0 of {len(places)} places; 0 operator Secret reads",
        seconds=time.monotonic() - started,
    )
