"""The kubelet runs Jobs as local processes and reports Pod and Job status like the real thing."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.harness.cluster import Cluster
from tests.harness.pod_faults import PodFault

WRITE_MESSAGE = (
    "import os; open(os.environ['SELFTAUGHT_TERMINATION_LOG'], 'w')"
    ".write('{\"index\": ' + os.environ.get('JOB_COMPLETION_INDEX', '-1') + ', \"token\": \"'"
    " + os.environ['TOKEN'] + '\"}')"
)


def job(
    name: str,
    *,
    completions: int = 1,
    indexed: bool = False,
    suspend: bool = False,
    code: str = WRITE_MESSAGE,
    **labels: str,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "completions": completions,
        "parallelism": 2,
        "backoffLimit": 0,
        "suspend": suspend,
        "template": {
            "spec": {
                "restartPolicy": "Never",
                "containers": [
                    {
                        "name": "main",
                        "image": "worker",
                        "command": ["python", "-c", code],
                        "env": [
                            {
                                "name": "TOKEN",
                                "valueFrom": {"secretKeyRef": {"name": "s", "key": "t"}},
                            }
                        ],
                    }
                ],
            }
        },
    }
    if indexed:
        spec["completionMode"] = "Indexed"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }


def apply(kube: Cluster, *objs: dict[str, Any]) -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "stringData": {"t": "sesame"},
    }
    for obj in (secret, *objs):
        done = kube.kubectl("apply", "-f", "-", input=json.dumps(obj))
        assert done.returncode == 0, done.stderr


def wait_job(
    kube: Cluster, name: str, condition: str = "Complete", timeout: float = 30
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got: dict[str, Any] = json.loads(
            kube.kubectl("get", "job", name, "-o", "json").stdout or "{}"
        )
        if any(c["type"] == condition for c in got.get("status", {}).get("conditions", [])):
            return got
        time.sleep(0.1)
    raise AssertionError(f"job {name} never reached {condition}: {got.get('status')}")


def pods_of(kube: Cluster, job_name: str) -> list[dict[str, Any]]:
    listing = json.loads(
        kube.kubectl("get", "pods", "-l", f"job-name={job_name}", "-o", "json").stdout
    )
    return sorted(listing["items"], key=lambda p: p["metadata"]["name"])


def terminated(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]["state"]["terminated"]  # type: ignore[no-any-return]


def test_job_succeeds_with_termination_message_and_secret_env(kube: Cluster) -> None:
    apply(kube, job("plain"))
    done = wait_job(kube, "plain")
    assert [c["type"] for c in done["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert done["status"]["succeeded"] == 1
    assert done["status"]["completionTime"]
    (pod,) = pods_of(kube, "plain")
    state = terminated(pod)
    assert pod["status"]["phase"] == "Succeeded"
    assert state["exitCode"] == 0
    assert state["reason"] == "Completed"
    assert json.loads(state["message"]) == {"index": -1, "token": "sesame"}
    assert pod["metadata"]["ownerReferences"][0]["name"] == "plain"


def test_indexed_job_runs_every_index(kube: Cluster) -> None:
    apply(kube, job("shards", completions=3, indexed=True))
    done = wait_job(kube, "shards")
    assert done["status"]["completedIndexes"] == "0-2"
    assert done["status"]["succeeded"] == 3
    pods = pods_of(kube, "shards")
    assert [p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] for p in pods] == [
        "0",
        "1",
        "2",
    ]
    assert sorted(json.loads(terminated(p)["message"])["index"] for p in pods) == [0, 1, 2]


def test_injected_oom_fails_the_job(kube: Cluster) -> None:
    assert kube.kubelet is not None
    kube.kubelet.inject(PodFault.OOM_KILLED, labels={"stage": "train"}, times=1)
    apply(kube, job("trainer", stage="train"))
    failed = wait_job(kube, "trainer", "Failed")
    assert [c["type"] for c in failed["status"]["conditions"]] == ["FailureTarget", "Failed"]
    assert failed["status"]["conditions"][-1]["reason"] == "BackoffLimitExceeded"
    (pod,) = pods_of(kube, "trainer")
    assert (terminated(pod)["exitCode"], terminated(pod)["reason"]) == (137, "OOMKilled")


def test_failing_process_reports_error_and_message(kube: Cluster) -> None:
    code = (
        "import os, sys; open(os.environ['SELFTAUGHT_TERMINATION_LOG'], 'w').write('x' * 5000);"
        " sys.exit(3)"
    )
    apply(kube, job("crash", code=code))
    wait_job(kube, "crash", "Failed")
    state = terminated(pods_of(kube, "crash")[0])
    assert (state["exitCode"], state["reason"], len(state["message"])) == (3, "Error", 4096)


def test_suspended_job_waits_until_resumed(kube: Cluster) -> None:
    assert kube.kubelet is not None
    kube.kubelet.inject(PodFault.INSTANT, name="^held$", message='{"instant": true}')
    apply(kube, job("held", suspend=True))
    time.sleep(0.5)
    assert pods_of(kube, "held") == []
    assert (
        kube.kubectl(
            "patch", "job", "held", "--type=merge", "-p", '{"spec": {"suspend": false}}'
        ).returncode
        == 0
    )
    done = wait_job(kube, "held")
    assert {c["type"]: c["status"] for c in done["status"]["conditions"]}["Suspended"] == "False"
    assert json.loads(terminated(pods_of(kube, "held")[0])["message"]) == {"instant": True}


def test_deadline_kills_a_long_job(kube: Cluster) -> None:
    long_job = job("slow", code="import time; time.sleep(60)")
    long_job["spec"]["activeDeadlineSeconds"] = 1
    apply(kube, long_job)
    failed = wait_job(kube, "slow", "Failed", timeout=15)
    assert failed["status"]["conditions"][-1]["reason"] == "DeadlineExceeded"
