"""The API server refuses a stage's Job create: the run says so, never a silent loop.

Before (issue 16): with ``memory: "-1Gi"`` the create got a 422, the run showed no phase, no
condition and no Event, and the operator retried with a traceback every few seconds, forever.
Now an invalid Job (422) fails the run with a condition naming the stage and the API's message
and a Warning Event, after one create; a forbidden one (403, e.g. over a ResourceQuota) waits
with backoff, says why in its Stalled condition, and goes on once the create passes. The
operator logs one line per refusal and no traceback.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from tests.e2e.conftest import E2E, run_manifest
from tests.reliability.conftest import (
    Operators,
    events_of,
    instant_stages,
    requests_with,
    run_object,
    wait_for,
)

pytestmark = pytest.mark.e2e

JOBS = r"/namespaces/default/jobs$"
INVALID = (
    'Job.batch "refused-i0-sel-a0" is invalid: spec.template.spec.containers[0].resources.'
    'limits[memory]: Invalid value: "-1Gi": must be greater than or equal to 0'
)
QUOTA = (
    'jobs.batch "waits-i0-sel-a0" is forbidden: exceeded quota: team-gpus, requested: '
    "requests.memory=1Gi, used: requests.memory=64Gi, limited: requests.memory=64Gi"
)


def condition(run: dict[str, object], kind: str) -> dict[str, str]:
    conditions = (run.get("status") or {}).get("conditions") or []  # type: ignore[attr-defined]
    return next((c for c in conditions if c["type"] == kind), {})


def refusal_lines(operators: Operators) -> list[str]:
    return [line for line in operators.logs().splitlines() if "refused Job" in line]


def test_an_invalid_job_fails_the_run_once_with_the_api_message(
    cluster: E2E, operators: Operators, ledger: Callable[..., None]
) -> None:
    cluster.api.faults.fail("POST", JOBS, status=422, times=None, message=INVALID)
    operators.start()
    started = time.monotonic()
    cluster.apply(run_manifest("refused", iterations=1))
    run = cluster.wait_phase("refused", "Failed", timeout=30)
    failed = condition(run, "Failed")
    assert failed["reason"] == "JobRejected"
    assert "stage select" in failed["message"]
    assert INVALID in failed["message"]
    warnings = [e for e in events_of(cluster, "refused") if e["type"] == "Warning"]
    assert [e["reason"] for e in warnings] == ["JobRejected"]
    time.sleep(2.0)  # a loop would show more creates and more log lines by now
    assert requests_with(cluster, verb="create", resource="jobs", status=422) == 1
    assert len(refusal_lines(operators)) == 1
    assert "Traceback" not in operators.logs()
    ledger("Job create refused 422 (invalid)", trials=1, lost=0, duplicates=0,
           outcome="Failed, JobRejected", seconds=time.monotonic() - started)  # fmt: skip


def test_a_forbidden_job_waits_with_backoff_then_runs(
    cluster: E2E, operators: Operators, ledger: Callable[..., None]
) -> None:
    instant_stages(cluster, 1)
    cluster.api.faults.fail("POST", JOBS, status=403, times=1, message=QUOTA)
    operators.start()
    started = time.monotonic()
    cluster.apply(run_manifest("waits", iterations=1))
    stalled = wait_for(
        lambda: (
            condition(run_object(cluster, "waits"), "Stalled").get("reason") == "JobRejected"
            and condition(run_object(cluster, "waits"), "Stalled")
        ),
        timeout=20,
        what="a Stalled condition naming the refusal",
    )
    assert stalled["status"] == "True"
    assert QUOTA in stalled["message"]
    assert "stage select" in stalled["message"]
    waiting = run_object(cluster, "waits")["status"]
    assert waiting["phase"] == "Running"
    assert "retrying in 10s" in waiting["message"]
    run = cluster.wait_phase("waits", "Succeeded", timeout=60)
    assert condition(run, "Stalled")["status"] == "False"  # recovered once the Job ran
    assert [e["reason"] for e in events_of(cluster, "waits") if e["type"] == "Warning"] == [
        "JobRejected"
    ]
    assert requests_with(cluster, verb="create", resource="jobs", status=403) == 1
    assert len(refusal_lines(operators)) == 1
    assert "Traceback" not in operators.logs()
    ledger("Job create refused 403 (quota), once", trials=1, lost=0, duplicates=0,
           outcome="waited 10 s, Succeeded", seconds=time.monotonic() - started)  # fmt: skip
