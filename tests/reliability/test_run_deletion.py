"""Deletion is final: a run deleted at any stage gets no Job created after its delete.

The bug (issue 16): deleting a run mid-stage re-created its Job (3 of 4 tries during
``pairs``). The cascade's Job DELETED event reached the operator before the run's own DELETED
event; the reconcile it queued planned from the watched copy of the run (trusted as current),
saw the Job missing and created it again, owned by a run that no longer existed.

Which of two watch streams delivers first is a race on a real cluster. Here it is made the
rule: the emulator holds every event of the runs' watch for :data:`LAG` seconds
(``faults.lag_watches``), so a Job's DELETED always arrives first. 20 runs go at once, each
deleted while the Job of one stage is running (every stage of a 1-iteration run, round after
round), after the operator's copy of it has caught up; the request log then counts the Job
creates that succeeded after each run's DELETE: 0.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable

import pytest
import yaml

from selftaught import names
from tests.e2e.conftest import E2E, run_manifest
from tests.reliability.conftest import Operators, all_stages, api_get, instant_stages

pytestmark = pytest.mark.e2e

ITERATIONS = 1
RUNS = 20
#: How late the runs' watch delivers each event (seconds).
LAG = 0.5
#: Each stage's pods run this long, so a delete lands while the stage's Job is active.
STAGE_SECONDS = 2.5
#: A run is deleted this long after its target Job appeared: the operator's watched copy has
#: caught up with its own status write by then (so it is "provably current" to the operator).
HOLD = 2 * LAG + 0.4
#: How long a late create could still arrive after the last delete.
SETTLE_SECONDS = 2.0


def delete_run(cluster: E2E, run: str) -> None:
    """DELETE as kubectl sends it (background propagation: the run goes, GC takes its Jobs)."""
    path = f"/apis/selftaught.dev/v1alpha1/namespaces/{cluster.namespace}/selftaughtruns/{run}"
    request = urllib.request.Request(
        f"{cluster.api.url}{path}",
        data=json.dumps({"propagationPolicy": "Background"}).encode(),
        headers={"Content-Type": "application/json"},
        method="DELETE",
    )
    with urllib.request.urlopen(request, timeout=10):
        pass


def deleted_at(cluster: E2E, run: str) -> float:
    """When the emulator handled the run's DELETE (its request-log clock)."""
    for record in cluster.api.requests.records():
        if record.verb == "delete" and record.resource == "selftaughtruns" and record.name == run:
            return record.at
    raise AssertionError(f"no DELETE of {run} in the request log")


def late_creates(cluster: E2E, run: str) -> list[str]:
    """Jobs of ``run`` created (201) after its DELETE was handled."""
    since = deleted_at(cluster, run)
    return [
        r.name
        for r in cluster.api.requests.records()
        if r.verb == "create" and r.resource == "jobs" and r.status == 201
        and r.name.startswith(f"{run}-") and r.at > since
    ]  # fmt: skip


def test_no_job_is_created_for_a_run_after_its_deletion(
    cluster: E2E, operators: Operators, ledger: Callable[..., None]
) -> None:
    cluster.api.faults.lag_watches(r"/selftaughtruns$", seconds=LAG)
    operators.start()
    instant_stages(cluster, ITERATIONS, delay=STAGE_SECONDS)
    stages = all_stages(ITERATIONS)
    targets = {
        f"gone-{i}": names.job_name(f"gone-{i}", *stages[i % len(stages)], 0) for i in range(RUNS)
    }
    started = time.monotonic()
    documents = [run_manifest(run, iterations=ITERATIONS) for run in targets]
    cluster.ns("apply", "-f", "-", input=yaml.safe_dump_all(documents))
    seen: dict[str, float] = {}
    deadline = time.monotonic() + 60
    while len(seen) < RUNS or any(run in targets for run in seen):
        assert time.monotonic() < deadline, f"runs never reached their stage: {targets}"
        items = api_get(cluster, f"/apis/batch/v1/namespaces/{cluster.namespace}/jobs")["items"]
        present = {job["metadata"]["name"] for job in items}
        now = time.monotonic()
        for run, job in list(targets.items()):
            if job in present:
                seen.setdefault(run, now)
            if run in seen and now - seen[run] >= HOLD:
                delete_run(cluster, run)
                del targets[run]
        time.sleep(0.05)
    time.sleep(SETTLE_SECONDS)
    late = {run: late_creates(cluster, run) for run in seen}
    late = {run: jobs for run, jobs in late.items() if jobs}
    ledger(
        f"{RUNS} runs deleted at every stage, runs' watch {LAG} s behind: Jobs created after",
        trials=RUNS,
        lost=0,
        duplicates=sum(len(v) for v in late.values()),
        outcome="none" if not late else "RE-CREATED",
        seconds=time.monotonic() - started,
    )
    assert late == {}, f"{late}\n{operators.logs()[-3000:]}"
