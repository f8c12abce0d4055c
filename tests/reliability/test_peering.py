"""Two replicas with kopf peering (``--peering NAME --priority N``): a hot standby.

Expected: only the higher priority replica acts while it lives; the other pauses; when the
active one stops, it takes itself out of the peering record and the standby carries on with
the runs, with nothing redone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import E2E, Operator, run_manifest
from tests.reliability.conftest import (
    Operators,
    expected_jobs,
    instant_stages,
    job_creates,
    job_names,
    wait_for,
)

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

PEERING = "selftaught"
#: kopf's peering CRDs, as users apply them.
PEERING_CRDS = Path(__file__).resolve().parents[2] / "examples" / "peering.yaml"


def created(operator: Operator) -> float:
    """Jobs this replica created, over every stage (its own /metrics)."""
    total = 0.0
    for line in operator.metrics().splitlines():
        if line.startswith("selftaught_jobs_created_total{"):
            total += float(line.rpartition(" ")[2])
    return total


def prepare_peering(cluster: E2E) -> None:
    """What a user does once: kopf's CRDs, and the peering object in the watched namespace."""
    cluster.kubectl("apply", "-f", str(PEERING_CRDS))
    for plural in ("kopfpeerings", "clusterkopfpeerings"):
        wait_for(
            lambda plural=plural: cluster.kubectl("get", plural, "-A", check=False).returncode == 0,
            timeout=20,
            what=f"{plural} served",
        )
    cluster.apply(
        {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}
    )


def in_peering(operator: Operator) -> bool:
    """kopf logs (at debug level) each keep-alive it wrote into the peering object."""
    return f"Keep-alive in '{PEERING}'" in operator.log.read_text(errors="replace")


def resumed(operator: Operator) -> bool:
    """kopf starts every peering replica paused and logs this once it may act."""
    return "Resuming operations after the pause" in operator.log.read_text(errors="replace")


def start_pair(operators: Operators, *extra: str) -> tuple[Operator, Operator]:
    """An active replica (priority 100) and a standby (50), once the active one acts."""
    active = operators.start("--peering", PEERING, "--priority", "100", *extra)
    standby = operators.start("--peering", PEERING, "--priority", "50", *extra)
    wait_for(  # both replicas start paused; each writes its entry into the peering record
        lambda: all(in_peering(operator) for operator in (active, standby)),
        timeout=30,
        what="both replicas in the peering record",
    )
    wait_for(lambda: resumed(active), timeout=30, what="the active replica to resume")
    return active, standby


def test_the_standby_replica_waits_then_takes_over(
    cluster: E2E, operators: Operators, ledger: Callable[..., None]
) -> None:
    started = time.monotonic()
    prepare_peering(cluster)
    instant_stages(cluster, 1)
    creates_before = job_creates(cluster)
    before_operators = len(cluster.api.requests.records())  # the peering object's apply ends here
    active, standby = start_pair(operators)

    cluster.apply(run_manifest("first", iterations=1))
    cluster.wait_phase("first", "Succeeded", timeout=60)
    assert job_names(cluster, "first") == expected_jobs("first", 1)
    assert created(active) == len(expected_jobs("first", 1))
    assert created(standby) == 0, "a paused replica created Jobs"
    assert not resumed(standby)

    # The active replica stops (a rollout, a drained node): it leaves the peering record on the
    # way out, so the standby resumes at once instead of waiting for the record to expire.
    assert operators.stop(active) == 0
    wait_for(lambda: resumed(standby), timeout=30, what="the standby to resume")
    cluster.apply(run_manifest("second", iterations=1))
    cluster.wait_phase("second", "Succeeded", timeout=60)
    assert created(standby) == len(expected_jobs("second", 1))
    assert job_names(cluster, "first") == expected_jobs("first", 1)  # nothing redone
    assert operators.stop(standby) == 0
    duplicates = job_creates(cluster) - creates_before - 2 * len(expected_jobs("first", 1))
    assert duplicates == 0
    # What the chart's RBAC grants on the peering object (charts/selftaught/templates/
    # _helpers.tpl): kopf lists and watches it and patches its own entry, nothing else.
    since = cluster.api.requests.records()[before_operators:]
    verbs = {r.verb for r in since if r.resource == "kopfpeerings"}
    assert verbs == {"list", "watch", "patch"}
    ledger(
        "peering: active replica stops, standby takes over",
        trials=1,
        lost=0,
        duplicates=duplicates,
        outcome="only the active replica acted; the standby resumed and finished the next run",
        seconds=time.monotonic() - started,
    )


def test_a_killed_active_replica_is_replaced_when_its_entry_expires(
    cluster: E2E, operators: Operators, ledger: Callable[..., None]
) -> None:
    """kill -9 leaves the dead replica's entry in the record: the standby waits for it to
    expire (``--peering-lifetime``, 60 s by default, 4 s here), then carries on."""
    started = time.monotonic()
    prepare_peering(cluster)
    instant_stages(cluster, 1)
    creates_before = job_creates(cluster)
    active, standby = start_pair(operators, "--peering-lifetime", "4")

    operators.kill9(active)
    killed = time.monotonic()
    wait_for(lambda: resumed(standby), timeout=30, what="the standby to take over")
    takeover = time.monotonic() - killed
    # It waited for the entry to expire (keep-alives come every second at this lifetime), and
    # not much longer.
    assert 2 <= takeover <= 4 + 10, f"took {takeover:.1f} s"
    cluster.apply(run_manifest("after-crash", iterations=1))
    cluster.wait_phase("after-crash", "Succeeded", timeout=60)
    assert created(standby) == len(expected_jobs("after-crash", 1))
    assert operators.stop(standby) == 0
    duplicates = job_creates(cluster) - creates_before - len(expected_jobs("after-crash", 1))
    assert duplicates == 0
    ledger(
        "peering: active replica kill -9, standby takes over (lifetime 4 s)",
        trials=1,
        lost=0,
        duplicates=duplicates,
        outcome=f"standby resumed {takeover:.1f} s after the kill and ran the next run",
        seconds=time.monotonic() - started,
    )
