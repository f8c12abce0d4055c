"""Job failures, as the kubelet reports them: non-zero exit, OOMKilled, evicted, unschedulable
and ImagePullBackOff beyond ``pendingTimeoutSeconds``. Five runs go side by side under one
operator (the backoff is real: 10 s, then 20 s), each with its own fault.

Expected: retried with backoff up to ``maxRetries``, then ``Failed`` with a condition naming the
stage, the Job and the cause; evictions never consume the retry budget; what earlier stages
computed stays in the history. (Exit code 2 -- bad input, never retried -- is
``tests/e2e/test_operator.py::test_bad_input_fails_at_once``.)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from selftaught import names
from selftaught.phases import Stage
from tests.e2e.conftest import E2E, run_manifest
from tests.harness.pod_faults import PodFault
from tests.reliability.conftest import (
    Operators,
    instant_stages,
    job_creates,
    job_names,
    jobs,
    lost_iterations,
    reasons,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

CUDA = '{"error": "CUDA error: an illegal memory access was encountered"}'


def manifest(run: str, stage: str, **resources: Any) -> dict[str, Any]:
    body = run_manifest(run)
    body["spec"]["stages"][stage].update(resources)
    return body


def created_at(e2e: E2E, run: str) -> dict[str, datetime]:
    return {
        j["metadata"]["name"]: datetime.fromisoformat(
            j["metadata"]["creationTimestamp"].replace("Z", "+00:00")
        )
        for j in jobs(e2e, run)
    }


def failed_condition(status: dict[str, Any]) -> dict[str, Any]:
    failed: dict[str, Any] = {c["type"]: c for c in status["conditions"]}["Failed"]
    return failed


def test_job_failures_are_retried_then_fail_clearly(
    cluster: E2E, operators: Operators, ledger: Callable[..., None]
) -> None:
    started = time.monotonic()
    kubelet = cluster.kubelet
    kubelet.inject(PodFault.EXIT, name=r"^exit-i1-train-", exit_code=1, message=CUDA)
    kubelet.inject(PodFault.OOM_KILLED, name=r"^oom-i1-judge-")
    kubelet.inject(PodFault.EVICTED, name=r"^evicted-i0-pair-", times=3)
    kubelet.inject(
        PodFault.UNSCHEDULABLE,
        name=r"^stuck-i0-sel-",
        message="0/3 nodes are available: 3 Insufficient nvidia.com/gpu.",
    )
    kubelet.inject(PodFault.IMAGE_PULL_BACKOFF, name=r"^pull-i0-eval-", times=1)
    instant_stages(cluster, 1)
    operator = operators.start()
    cluster.apply(manifest("exit", "train", maxRetries=2))
    cluster.apply(manifest("oom", "judge", maxRetries=1))
    cluster.apply(manifest("evicted", "pairs", maxRetries=0))
    cluster.apply(manifest("stuck", "select", maxRetries=1, pendingTimeoutSeconds=10))
    cluster.apply(manifest("pull", "evaluate", maxRetries=1, pendingTimeoutSeconds=10))

    # Non-zero exit: 3 attempts (maxRetries 2), 10 s then 20 s apart, then Failed.
    status = cluster.wait_phase("exit", "Failed", timeout=90)["status"]
    failed = failed_condition(status)
    assert failed["reason"] == "RetriesExhausted"
    for part in ("stage train", "Job exit-i1-train-a2", "ProgramError", "illegal memory access"):
        assert part in failed["message"], failed["message"]
    stamps = created_at(cluster, "exit")
    train = [stamps[names.job_name("exit", 1, Stage.TRAIN, a)] for a in range(3)]
    assert (train[1] - train[0]).total_seconds() >= 9  # backoff 10 s (timestamps: whole s)
    assert (train[2] - train[1]).total_seconds() >= 19  # then 20 s
    assert "exit-i1-train-a3" not in job_names(cluster, "exit")
    assert lost_iterations(status, 0) == 0, "iteration 0's results must survive the failure"
    assert reasons(cluster, "exit").count("StageRetrying") == 2

    # OOMKilled: maxRetries 1 -> two attempts, then Failed naming OOMKilled.
    status = cluster.wait_phase("oom", "Failed", timeout=60)["status"]
    failed = failed_condition(status)
    for part in ("stage judge", "Job oom-i1-judge-a1", "OOMKilled"):
        assert part in failed["message"], failed["message"]
    assert lost_iterations(status, 0) == 0

    # Evicted three times with maxRetries 0: disruptions are free, the run succeeds.
    status = cluster.wait_phase("evicted", "Succeeded", timeout=60)["status"]
    pairs = [n for n in job_names(cluster, "evicted") if "-pair-" in n]
    assert pairs == [names.job_name("evicted", 0, Stage.PAIRS, a) for a in range(4)]
    assert status["attempt"]["failures"] == 0
    assert lost_iterations(status, 1) == 0

    # Unschedulable beyond pendingTimeoutSeconds: Stalled, deleted, retried once, Failed.
    status = cluster.wait_phase("stuck", "Failed", timeout=90)["status"]
    failed = failed_condition(status)
    for part in ("stage select", "Job stuck-i0-sel-a1", "Unschedulable"):
        assert part in failed["message"], failed["message"]
    told = reasons(cluster, "stuck")
    assert "Unschedulable" in told  # the Warning Event of the Stalled condition
    wait_for(lambda: not job_names(cluster, "stuck"), timeout=20, what="stuck Jobs deleted")

    # ImagePullBackOff once beyond pendingTimeoutSeconds, then the retry pulls: Succeeded.
    status = cluster.wait_phase("pull", "Succeeded", timeout=90)["status"]
    assert names.job_name("pull", 0, Stage.EVALUATE, 1) in job_names(cluster, "pull")
    assert "ImagePullBackOff" in reasons(cluster, "pull")
    assert lost_iterations(status, 1) == 0

    expected_creates = 7 + 5 + 9 + 2 + 7  # every attempt of the five runs, once
    duplicates = job_creates(cluster) - expected_creates
    assert duplicates == 0
    assert operator.sample("selftaught_jobs_failed_total", stage="pairs", reason="Disrupted") == 3
    assert operator.sample("selftaught_jobs_failed_total", stage="judge", reason="OOMKilled") == 2
    assert operators.stop(operator) == 0
    seconds = time.monotonic() - started
    for scenario, trials, outcome in (
        ("Job exit 1 on train, maxRetries 2", 3, "Failed RetriesExhausted (backoff 10 s, 20 s)"),
        ("Job OOMKilled on judge, maxRetries 1", 2, "Failed RetriesExhausted, names OOMKilled"),
        ("pod evicted 3x on pairs, maxRetries 0", 3, "Succeeded (evictions cost no retry)"),
        ("pod Unschedulable > pendingTimeoutSeconds 10", 2, "Failed, Stalled + deleted"),
        ("ImagePullBackOff > pendingTimeoutSeconds once", 1, "Succeeded on the retry"),
    ):
        ledger(
            scenario,
            trials=trials,
            lost=0,
            duplicates=duplicates,
            outcome=outcome,
            seconds=seconds,
        )
