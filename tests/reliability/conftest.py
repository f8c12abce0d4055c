"""Fixtures and probes for the reliability suite: chaos, faults and bad input.

The cluster and the operator come from the end-to-end suite (``tests/e2e/conftest.py``): the
real ``selftaught operator`` as a subprocess against the emulator, the harness kubelet in
INSTANT mode. What is added here:

* :class:`Operators` -- starts operators and *guarantees* they are gone after the test, however
  it ended (SIGKILL is part of the scenarios, so nothing here waits for a clean exit);
* probes that read the cluster the way an auditor would: successful Job creates in the request
  log, Job objects by name, the run's Events, the history without timestamps;
* :func:`instant_stages`: per-(iteration, stage) INSTANT pods with distinct summaries, so two
  runs' histories are equal only if every iteration's numbers reached the status;
* a ledger of measured rows, printed as the "Reliability" table at the end of the session.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from selftaught import names
from selftaught.phases import Stage, stages_of
from tests.e2e.conftest import E2E, Operator, cluster, start_operator, stop_operator
from tests.harness.fixtures import kube
from tests.harness.pod_faults import PodFault

__all__ = ["cluster", "kube"]  # the e2e fixtures, re-exported for this package's tests

#: History fields that depend on the clock, not on what the run computed.
CLOCK_FIELDS = ("startedAt", "completedAt", "stageSeconds", "gpuSeconds")


def summaries_for(iteration: int) -> dict[str, dict[str, Any]]:
    """Realistic worker summaries whose numbers differ per iteration."""
    return {
        "select": {"instructions": 120, "heldout": 24, "badLines": 0, "read": 150, "seconds": 1.0},
        "pairs": {"pairs": 96, "heldoutPairs": 24, "failed": 0, "seconds": 1.0},
        "judge": {"pairs": 96, "sampled": 384, "kept": 60 + iteration, "invalid": 5, "seconds": 1},
        "train": {"loss": round(0.5 - 0.05 * iteration, 3), "examples": 60, "seconds": 1.0},
        "evaluate": {
            "scores": {"heldout": {"accuracy": 0.6 + 0.1 * iteration, "examples": 24}},
            "seconds": 1.0,
        },
    }


def all_stages(iterations: int) -> list[tuple[int, Stage]]:
    """(iteration, stage) in the order a run goes through them."""
    return [(i, s) for i in range(iterations + 1) for s in stages_of(i)]


def instant_stages(
    e2e: E2E,
    iterations: int,
    *,
    delay: float = 0.0,
    run: str | None = None,
    real: tuple[Stage, ...] = (),
) -> None:
    """Every stage's pods (of ``run``, or of every run) succeed after ``delay`` s with that
    iteration's summary; the ``real`` stages run their real worker instead."""
    for iteration, stage in all_stages(iterations):
        if stage in real:
            continue
        e2e.kubelet.inject(
            PodFault.INSTANT,
            name=rf"^{run}-" if run else None,
            labels={names.LABEL_STAGE: stage.value, names.LABEL_ITERATION: str(iteration)},
            message=json.dumps(summaries_for(iteration)[stage.value]),
            delay=delay,
        )


def expected_jobs(run: str, iterations: int) -> list[str]:
    return sorted(names.job_name(run, i, s, 0) for i, s in all_stages(iterations))


def wait_for(predicate: Callable[[], object], *, timeout: float, what: str) -> Any:
    """Poll ``predicate`` every 50 ms until it is truthy; its value, or AssertionError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


# ------------------------------------------------------------------------------ probes


def api_get(e2e: E2E, path: str) -> Any:
    """GET straight from the emulator (cheaper than a kubectl process in tight polls)."""
    with urllib.request.urlopen(f"{e2e.api.url}{path}", timeout=10) as answer:
        return json.loads(answer.read())


def run_object(e2e: E2E, run: str) -> dict[str, Any]:
    path = f"/apis/selftaught.dev/v1alpha1/namespaces/{e2e.namespace}/selftaughtruns/{run}"
    return api_get(e2e, path)  # type: ignore[no-any-return]


def jobs(e2e: E2E, run: str) -> list[dict[str, Any]]:
    items = api_get(e2e, f"/apis/batch/v1/namespaces/{e2e.namespace}/jobs")["items"]
    return [j for j in items if j["metadata"]["labels"].get(names.LABEL_RUN) == run]


def job_names(e2e: E2E, run: str) -> list[str]:
    return sorted(j["metadata"]["name"] for j in jobs(e2e, run))


def pods_of(e2e: E2E, job: str) -> list[dict[str, Any]]:
    items = api_get(e2e, f"/api/v1/namespaces/{e2e.namespace}/pods")["items"]
    return [p for p in items if p["metadata"]["name"].startswith(job + "-")]


def job_creates(e2e: E2E) -> int:
    """Job creates that succeeded (201) in this cluster, from the emulator's request log.

    Only the operator creates Jobs (the kubelet creates pods), so with deterministic names every
    create beyond one per Job name is a duplicate action. Fails if the bounded log overflowed.
    """
    log = e2e.api.requests
    records = log.records()
    assert log.total == len(records), "request log overflowed: counts would be wrong"
    return sum(
        1 for r in records if r.verb == "create" and r.resource == "jobs" and r.status == 201
    )


def requests_with(e2e: E2E, *, verb: str, resource: str, status: int) -> int:
    return sum(
        1
        for r in e2e.api.requests.records()
        if r.verb == verb and r.resource == resource and r.status == status
    )


def events_of(e2e: E2E, run: str) -> list[dict[str, Any]]:
    items = api_get(e2e, f"/api/v1/namespaces/{e2e.namespace}/events")["items"]
    return [e for e in items if (e.get("involvedObject") or {}).get("name") == run]


def reasons(e2e: E2E, run: str) -> list[str]:
    return [e["reason"] for e in events_of(e2e, run)]


def story(status: dict[str, Any], run: str) -> str:
    """The history and the best judge with clock fields removed and the run name normalised."""
    history = [{k: v for k, v in r.items() if k not in CLOCK_FIELDS} for r in status["history"]]
    kept = {
        "history": history,
        "bestIteration": status.get("bestIteration"),
        "bestAccuracy": status.get("bestAccuracy"),
        "bestModel": status.get("bestModel"),
        "phase": status.get("phase"),
        "progress": status.get("progress"),
    }
    return json.dumps(kept, sort_keys=True).replace(run, "RUN")


def lost_iterations(status: dict[str, Any], iterations: int) -> int:
    """Iterations 0..n that are missing, unfinished or without scores in the history."""
    done = {
        r["iteration"]
        for r in status.get("history") or []
        if r.get("completedAt") and r.get("scores")
    }
    return sum(1 for i in range(iterations + 1) if i not in done)


# ------------------------------------------------------------------------------ operators


@dataclass
class Operators:
    """Operators started by one test; every one is gone when the test ends."""

    e2e: E2E
    logdir: Path
    started: list[Operator] = field(default_factory=list)

    def start(self, *extra: str) -> Operator:
        log = self.logdir / f"operator-{len(self.started)}.log"
        operator = start_operator(self.e2e, log, *extra)
        self.started.append(operator)
        return operator

    def kill9(self, operator: Operator) -> None:
        """SIGKILL: no cleanup handler, no final status write, connections just drop."""
        operator.process.kill()
        operator.process.wait(timeout=10)

    def stop(self, operator: Operator) -> int:
        return stop_operator(operator)

    def logs(self) -> str:
        return "".join(
            p.read_text(errors="replace") for p in sorted(self.logdir.glob("operator-*.log"))
        )

    def close(self) -> None:
        for operator in self.started:
            if operator.process.poll() is None:
                operator.process.kill()
                operator.process.wait(timeout=10)


@pytest.fixture
def operators(cluster: E2E, tmp_path: Path) -> Iterator[Operators]:
    cluster.require_emulator()
    pool = Operators(cluster, tmp_path)
    try:
        yield pool
    finally:
        pool.close()


# ------------------------------------------------------------------------------ ledger


@dataclass
class Row:
    scenario: str
    trials: int
    lost: int
    duplicates: int
    outcome: str
    seconds: float


_LEDGER: list[Row] = []


@pytest.fixture
def ledger() -> Callable[..., None]:
    """``ledger(scenario, trials=, lost=, duplicates=, outcome=, seconds=)`` adds a table row."""

    def record(
        scenario: str, *, trials: int, lost: int, duplicates: int, outcome: str, seconds: float
    ) -> None:
        _LEDGER.append(Row(scenario, trials, lost, duplicates, outcome, round(seconds, 1)))

    return record


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _LEDGER:
        return
    lines = [
        "| scenario | trials | lost iterations | duplicate Jobs | outcome | seconds |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.scenario} | {r.trials} | {r.lost} | {r.duplicates} | {r.outcome} | {r.seconds} |"
        for r in _LEDGER
    ]
    terminalreporter.section("reliability ledger")
    for line in lines:
        terminalreporter.write_line(line)
    target = os.environ.get("SELFTAUGHT_RELIABILITY_REPORT")
    if target:
        Path(target).write_text(json.dumps([r.__dict__ for r in _LEDGER], indent=1))
