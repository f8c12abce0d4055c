"""kill -9 the operator at every stage boundary, in the middle of every stage and at seeded
random moments of a 2-iteration run; and two operators on one run at once.

Every scenario is compared with an undisturbed run in the same cluster: the same history
(counts and scores, not timestamps), exactly one successful create per Job (the request log),
exactly the Jobs of an undisturbed run (by name), no lost iteration, no transition told twice.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from functools import partial

import pytest

from selftaught import names
from tests.e2e.conftest import E2E, run_manifest
from tests.reliability.conftest import (
    Operators,
    all_stages,
    expected_jobs,
    instant_stages,
    job_creates,
    job_names,
    jobs,
    lost_iterations,
    pods_of,
    reasons,
    requests_with,
    run_object,
    story,
    wait_for,
)

pytestmark = pytest.mark.e2e

ITERATIONS = 2
STAGES = len(all_stages(ITERATIONS))  # 9


def undisturbed(cluster: E2E, operators: Operators) -> str:
    """The reference story: the same run with nothing done to it."""
    operator = operators.start()
    cluster.apply(run_manifest("calm", iterations=ITERATIONS))
    status = cluster.wait_phase("calm", "Succeeded", timeout=60)["status"]
    assert operators.stop(operator) == 0
    assert lost_iterations(status, ITERATIONS) == 0
    return story(status, "calm")


def check_converged(cluster: E2E, run: str, reference: str, *, creates_before: int) -> int:
    """Assert the chaos run equals the reference; return its duplicate Job creates (0)."""
    status = cluster.wait_phase(run, "Succeeded", timeout=90)["status"]
    assert story(status, run) == reference
    assert lost_iterations(status, ITERATIONS) == 0
    assert job_names(cluster, run) == expected_jobs(run, ITERATIONS)
    duplicates = job_creates(cluster) - creates_before - STAGES
    assert duplicates == 0
    told = reasons(cluster, run)
    assert told.count("StageStarted") <= STAGES  # Events are at most once (sent after status)
    assert told.count("IterationCompleted") <= ITERATIONS + 1
    assert told.count("Completed") <= 1
    return duplicates


def created(cluster: E2E, run: str, job: str) -> bool:
    return job in job_names(cluster, run)


def recorded_and_running(cluster: E2E, run: str, job: str) -> bool:
    children = run_object(cluster, run).get("status", {}).get("children")
    running = any(p["status"].get("phase") == "Running" for p in pods_of(cluster, job))
    return children == [job] and running


def test_kill9_at_every_boundary_and_mid_stage(
    cluster: E2E, operators: Operators, ledger: Callable[..., None]
) -> None:
    """19 SIGKILLs in one run: after each stage's Job was created but before the status knew
    (its write is refused meanwhile), and while each stage's pod runs; plus the last write."""
    started = time.monotonic()
    instant_stages(cluster, ITERATIONS, run="calm")
    instant_stages(cluster, ITERATIONS, delay=3.0, run="chaos")
    reference = undisturbed(cluster, operators)
    creates_before = job_creates(cluster)
    run = "chaos"
    gate_path = rf"/selftaughtruns/{run}/status$"
    cluster.api.faults.fail("PATCH", gate_path, status=500, times=None)
    operator = operators.start()
    cluster.apply(run_manifest(run, iterations=ITERATIONS))
    kills, mid_stage = 0, 0
    for iteration, stage in all_stages(ITERATIONS):
        job = names.job_name(run, iteration, stage, 0)
        # Boundary: the operator created this stage's Job, its status write is being refused.
        wait_for(partial(created, cluster, run, job), timeout=30, what=f"Job {job}")
        operators.kill9(operator)
        kills += 1
        cluster.api.faults.clear()  # lift the gate
        operator = operators.start()
        # Middle: the restarted operator recorded the stage; its pod is still running.
        wait_for(
            partial(recorded_and_running, cluster, run, job),
            timeout=30,
            what=f"{job} recorded and running",
        )
        running = any(p["status"].get("phase") == "Running" for p in pods_of(cluster, job))
        operators.kill9(operator)
        kills += 1
        mid_stage += running
        cluster.api.faults.fail("PATCH", gate_path, status=500, times=None)
        operator = operators.start()
    # The last boundary: the final write (Succeeded) is refused; kill, lift, restart.
    wait_for(
        lambda: all(j.get("status", {}).get("succeeded") for j in jobs(cluster, run)),
        timeout=30,
        what="the last Job to finish",
    )
    refused = requests_with(cluster, verb="patch", resource="selftaughtruns/status", status=500)
    wait_for(
        lambda: (
            requests_with(cluster, verb="patch", resource="selftaughtruns/status", status=500)
            > refused
        ),
        timeout=30,
        what="the final status write to be refused",
    )
    operators.kill9(operator)
    kills += 1
    cluster.api.faults.clear()
    operator = operators.start()
    duplicates = check_converged(cluster, run, reference, creates_before=creates_before)
    assert mid_stage == STAGES, "every mid-stage kill must hit a running pod"
    assert kills == 2 * STAGES + 1
    assert operators.stop(operator) == 0
    ledger(
        "operator SIGKILL at every stage boundary + mid-stage (2 iterations)",
        trials=kills,
        lost=0,
        duplicates=duplicates,
        outcome="Succeeded, same history",
        seconds=time.monotonic() - started,
    )


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3], ids=lambda s: f"seed-{s}")
def test_kill9_at_seeded_random_moments(
    cluster: E2E, operators: Operators, ledger: Callable[..., None], seed: int
) -> None:
    """Three SIGKILLs at random moments (and random downtimes) of a run whose stages last 0.6 s."""
    started = time.monotonic()
    rng = random.Random(seed)
    instant_stages(cluster, ITERATIONS, run="calm")
    instant_stages(cluster, ITERATIONS, delay=0.6, run=f"random-{seed}")
    reference = undisturbed(cluster, operators)
    creates_before = job_creates(cluster)
    run = f"random-{seed}"
    operator = operators.start()
    cluster.apply(run_manifest(run, iterations=ITERATIONS))
    applied = time.monotonic()
    moments = sorted(rng.uniform(0.2, 6.0) for _ in range(3))
    for moment in moments:
        time.sleep(max(0.0, applied + moment - time.monotonic()))
        operators.kill9(operator)
        time.sleep(rng.uniform(0.0, 1.0))  # down for a while; pods keep finishing
        operator = operators.start()
    duplicates = check_converged(cluster, run, reference, creates_before=creates_before)
    assert operators.stop(operator) == 0
    ledger(
        f"operator SIGKILL at 3 random moments (seed {seed})",
        trials=len(moments),
        lost=0,
        duplicates=duplicates,
        outcome="Succeeded, same history",
        seconds=time.monotonic() - started,
    )


def test_two_operators_at_once_act_once(
    cluster: E2E, operators: Operators, ledger: Callable[..., None]
) -> None:
    """Two standalone operators reconcile one run side by side: deterministic Job names make the
    slower create a 409, resourceVersion-guarded status patches make the slower writer re-plan."""
    started = time.monotonic()
    instant_stages(cluster, ITERATIONS, run="calm")
    instant_stages(cluster, ITERATIONS, delay=0.2, run="twins")
    reference = undisturbed(cluster, operators)
    creates_before = job_creates(cluster)
    first, second = operators.start(), operators.start()
    run = "twins"
    cluster.apply(run_manifest(run, iterations=ITERATIONS))
    duplicates = check_converged(cluster, run, reference, creates_before=creates_before)
    told = reasons(cluster, run)
    assert told.count("StageStarted") == STAGES  # told once each, by whichever wrote first
    lost_races = requests_with(cluster, verb="create", resource="jobs", status=409) + (
        requests_with(cluster, verb="patch", resource="selftaughtruns/status", status=409)
    )
    logs = operators.logs()
    assert operators.stop(first) == 0
    assert operators.stop(second) == 0
    assert "created Job" in logs
    ledger(
        "two operators on one run at once",
        trials=1,
        lost=0,
        duplicates=duplicates,
        outcome=f"Succeeded, same history ({lost_races} lost races answered 409)",
        seconds=time.monotonic() - started,
    )
