"""Deployment events of the judge server (spec.serve) queue their run only when the rollout
moved, never for a run whose deletion was seen."""

from __future__ import annotations

from typing import Any

from selftaught import names
from tests.unit.test_run_deletion import controller, run_event

Object = dict[str, Any]


def deployment(**status: int) -> Object:
    return {
        "kind": "Deployment",
        "metadata": {"namespace": "ns", "name": "demo-judge", "uid": "dep-1", "generation": 2,
                     "labels": {names.LABEL_RUN_UID: "uid-1"}},
        "status": {"observedGeneration": 2, "replicas": 1, "updatedReplicas": 1, **status},
    }  # fmt: skip


def test_a_rollout_change_queues_the_run_once() -> None:
    ctl, queue = controller()
    ctl.on_run("ADDED", run_event())
    queue.added.clear()
    ctl.on_server("MODIFIED", deployment(readyReplicas=0))
    ctl.on_server("MODIFIED", deployment(readyReplicas=0))  # nothing moved: skipped
    ctl.on_server("MODIFIED", deployment(readyReplicas=1))
    assert queue.added == [(("ns", "demo"), False), (("ns", "demo"), False)]
    ctl.on_server("DELETED", deployment(readyReplicas=1))  # someone deleted it: recreate
    assert queue.added[-1] == (("ns", "demo"), True)


def test_a_deleted_runs_server_is_ignored() -> None:
    ctl, queue = controller()
    ctl.on_run("ADDED", run_event())
    ctl.on_run("DELETED", run_event())
    queue.added.clear()
    ctl.on_server("DELETED", deployment(readyReplicas=1))
    assert queue.added == []
