"""API faults injected by the emulator while a run is in flight: 409 conflicts on status
patches, 410 Gone on watches, 5xx bursts on lists and creates, slow responses, watch streams
closed or silent. The same operator process recovers from each (no restart), the run ends with
the history of an undisturbed run and with one successful create per Job.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

import pytest

from tests.e2e.conftest import E2E, run_manifest
from tests.reliability.conftest import (
    Operators,
    all_stages,
    expected_jobs,
    instant_stages,
    job_creates,
    job_names,
    lost_iterations,
    requests_with,
    story,
    wait_for,
)

pytestmark = pytest.mark.e2e

ITERATIONS = 1
STATUS = r"/selftaughtruns/[^/]+/status$"


@contextmanager
def repeatedly(action: Callable[[], None], every: float) -> Iterator[None]:
    """Call ``action`` every ``every`` s in a thread until the block ends (bounded by it)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            action()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


@dataclass(frozen=True)
class Fault:
    """How to disturb the API during the run, and the evidence that it did."""

    what: str
    inject: Callable[[E2E], object]
    #: Evidence that the fault reached the operator: (cluster, seconds of the run) -> > 0.
    fired: Callable[[E2E, float], float]
    during: Callable[[E2E], object] | None = None  # a context manager around the wait
    #: Inject once the run's first Job exists (the operator knows the run) instead of before.
    mid_run: bool = False


def refused(*rules: tuple[str, str, int]) -> Callable[[E2E, float], float]:
    return lambda e2e, _: sum(
        requests_with(e2e, verb=verb, resource=resource, status=status)
        for verb, resource, status in rules
    )


def compact_history(e2e: E2E) -> None:
    """Keep only the last 2 watch events: a watch resuming from anything older gets an
    in-stream ``ERROR`` 410 Expired, as after an etcd compaction."""
    store = e2e.api.store
    store.history = deque(list(store.history)[-2:], maxlen=2)


def closing_watches(e2e: E2E) -> object:
    return repeatedly(lambda: e2e.api.faults.close_watches(""), every=0.3)


def count_watches(e2e: E2E) -> int:
    return sum(1 for r in e2e.api.requests.records() if r.verb == "watch")


def rewatched(e2e: E2E, _: float) -> float:
    """Watch requests made since the fault was injected (streams re-opened after it)."""
    return count_watches(e2e) - int(e2e.env["watches-before"])


def slowed(e2e: E2E, _: float) -> float:
    left = [r.remaining or 0 for r in e2e.api.faults._rules if r.delay]
    return 60 - sum(left)


FAULTS = {
    "409-on-status-patches": Fault(
        "409 Conflict on 6 status patches",
        lambda e2e: e2e.api.faults.fail("PATCH", STATUS, status=409, times=6),
        refused(("patch", "selftaughtruns/status", 409)),
    ),
    "410-gone-on-watches": Fault(
        "watch history compacted + streams closed every 0.3 s: resumes get 410 Expired",
        compact_history,
        rewatched,
        closing_watches,
    ),
    "5xx-burst-on-lists": Fault(
        "watches closed, then 500/503 on the next 3 GETs of jobs and 3 of pods (lists, watches)",
        lambda e2e: (
            e2e.api.faults.fail("GET", r"/namespaces/default/jobs$", status=500, times=3),
            e2e.api.faults.fail("GET", r"/namespaces/default/pods$", status=503, times=3),
            e2e.api.faults.close_watches(r"/namespaces/default/"),
        ),
        refused(
            ("list", "jobs", 500),
            ("list", "pods", 503),
            ("watch", "jobs", 500),
            ("watch", "pods", 503),
        ),
    ),
    "5xx-burst-on-creates": Fault(
        "500, 503, 500 on the next 3 Job creates",
        lambda e2e: (
            e2e.api.faults.fail("POST", r"/namespaces/default/jobs$", status=500, times=1),
            e2e.api.faults.fail("POST", r"/namespaces/default/jobs$", status=503, times=1),
            e2e.api.faults.fail("POST", r"/namespaces/default/jobs$", status=500, times=1),
        ),
        refused(("create", "jobs", 500), ("create", "jobs", 503)),
    ),
    "slow-responses": Fault(
        "+0.3 s on the next 60 requests about runs, Jobs and pods",
        lambda e2e: e2e.api.faults.delay(
            "*", r"/(selftaughtruns|jobs|pods)", seconds=0.3, times=60
        ),
        slowed,
    ),
    "watch-streams-closed": Fault(
        "every open watch stream ended every 0.3 s",
        lambda e2e: None,
        rewatched,
        closing_watches,
    ),
    "watch-streams-silent": Fault(
        "mid-run, the operator's watches deliver nothing for 8 s (no events, no bookmarks)",
        lambda e2e: e2e.api.faults.silence_watches(r"/namespaces/default/", seconds=8.0),
        lambda e2e, seconds: seconds - 4.0,  # the resync (5 s), not an event, moved it on
        mid_run=True,
    ),
}


@pytest.mark.parametrize("name", list(FAULTS))
def test_operator_rides_out_api_faults(
    cluster: E2E, operators: Operators, ledger: Callable[..., None], name: str
) -> None:
    fault = FAULTS[name]
    started = time.monotonic()
    instant_stages(cluster, ITERATIONS, delay=0.2)
    operator = operators.start()
    cluster.apply(run_manifest("calm", iterations=ITERATIONS))
    reference = story(cluster.wait_phase("calm", "Succeeded")["status"], "calm")
    creates_before = job_creates(cluster)

    cluster.env["watches-before"] = str(count_watches(cluster))
    run = "faulty"
    if not fault.mid_run:
        fault.inject(cluster)
    applied = time.monotonic()
    cluster.apply(run_manifest(run, iterations=ITERATIONS))
    if fault.mid_run:
        wait_for(lambda: job_names(cluster, run), timeout=30, what="the first Job")
        fault.inject(cluster)
    with fault.during(cluster) if fault.during else nullcontext():  # type: ignore[attr-defined]
        status = cluster.wait_phase(run, "Succeeded", timeout=90)["status"]
    seconds = time.monotonic() - applied
    evidence = fault.fired(cluster, seconds)
    cluster.api.faults.clear()

    assert operator.process.poll() is None, "the operator must recover without a restart"
    assert story(status, run) == reference
    assert lost_iterations(status, ITERATIONS) == 0
    assert job_names(cluster, run) == expected_jobs(run, ITERATIONS)
    duplicates = job_creates(cluster) - creates_before - len(all_stages(ITERATIONS))
    assert duplicates == 0
    assert evidence > 0, "the fault never reached the operator: this test proves nothing"
    if name == "410-gone-on-watches":  # kopf's words for an in-stream 410 Expired
        assert "Restarting the watch-stream" in operators.logs()
    assert operators.stop(operator) == 0
    ledger(
        f"API: {fault.what}",
        trials=1,
        lost=0,
        duplicates=duplicates,
        outcome="Succeeded, same history, no restart",
        seconds=time.monotonic() - started,
    )
