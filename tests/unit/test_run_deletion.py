"""Deletion is final: once a run's deletion is observed, nothing is created for it again.

The bug this pins (issue 16): deleting a run mid-stage re-created its Job, because the
cascade's Job DELETED event queued the run and the reconcile planned from the watched copy of a
run that no longer existed. Now a child that goes away makes the reconcile read the run fresh,
and the uids of deleted runs are tombstones every create checks.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest

from selftaught import names
from selftaught.controller.config import OperatorConfig
from selftaught.controller.handlers import Controller
from selftaught.controller.reconcile import Reconciler
from selftaught.controller.runs import RunBook, Tombstones
from selftaught.metrics import Metrics
from tests.unit.planning import make_run
from tests.unit.test_reconcile_reads import FakeApi, no_children

Object = dict[str, Any]


class CountingApi(FakeApi):
    def __init__(self, body: Object) -> None:
        super().__init__(body)
        self.created: list[str] = []

    def create(self, manifest: Object) -> Object | None:
        if manifest["kind"] == "Job":
            self.created.append(manifest["metadata"]["name"])
        return manifest


def run_body() -> Object:
    body = make_run().model_dump(by_alias=True, exclude_none=True)
    body["metadata"]["resourceVersion"] = "10"
    return body


def test_a_buried_run_is_not_acted_on_even_from_a_current_watched_copy() -> None:
    api = CountingApi(run_body())
    tombstones = Tombstones()
    reconciler = Reconciler(api, Metrics(), buried=tombstones.__contains__)  # type: ignore[arg-type]
    reconciler.reconcile("ns", "demo", no_children())
    assert len(api.created) == 1  # the first stage's Job
    watched = copy.deepcopy(api.body)
    assert reconciler.is_current(watched)

    tombstones.bury("uid-1")
    api.body["status"] = {}  # a plan from this copy would create the first Job again
    assert reconciler.reconcile("ns", "demo", no_children(), watched=watched) is None
    assert len(api.created) == 1


def test_a_deletion_observed_while_planning_stops_the_creates() -> None:
    api = CountingApi(run_body())
    calls = iter([False, True])  # alive when read, buried by the time the create comes
    reconciler = Reconciler(api, Metrics(), buried=lambda uid: next(calls))  # type: ignore[arg-type]
    assert reconciler.reconcile("ns", "demo", no_children()) is None
    assert api.created == []


class FakeQueue:
    def __init__(self) -> None:
        self.added: list[tuple[tuple[str, str], bool]] = []
        self.forgotten: list[tuple[str, str]] = []

    def add(self, key: tuple[str, str], *, fresh: bool = False, **_: Any) -> None:
        self.added.append((key, fresh))

    def forget(self, key: tuple[str, str]) -> None:
        self.forgotten.append(key)


def controller() -> tuple[Controller, FakeQueue]:
    ctl = Controller(OperatorConfig(metrics_port=0))
    queue = FakeQueue()
    ctl.queue = queue  # type: ignore[assignment]
    return ctl, queue


def run_event(**meta: Any) -> Object:
    return {"metadata": {"namespace": "ns", "name": "demo", "uid": "uid-1", "generation": 1,
                         **meta}}  # fmt: skip


def job_event(*, deleting: bool = False, succeeded: bool = False) -> Object:
    meta: Object = {
        "namespace": "ns",
        "name": "demo-i0-pairs-a0",
        "uid": "job-1",
        "labels": {names.LABEL_RUN_UID: "uid-1"},
        "ownerReferences": [
            {"kind": "SelfTaughtRun", "name": "demo", "uid": "uid-1", "controller": True}
        ],
    }
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    status: Object = {"active": 1}
    if succeeded:
        status = {"succeeded": 1, "conditions": [{"type": "Complete", "status": "True"}]}
    return {"kind": "Job", "metadata": meta, "status": status}


@pytest.mark.parametrize(
    ("event_type", "deleting"),
    [
        pytest.param("DELETED", False, id="child-deleted"),
        pytest.param("MODIFIED", True, id="child-deleting"),
    ],
)
def test_a_child_going_away_queues_a_fresh_read_of_its_run(event_type: str, deleting: bool) -> None:
    ctl, queue = controller()
    ctl.on_run("ADDED", run_event())
    queue.added.clear()
    ctl.on_child(event_type, job_event(deleting=deleting))
    assert queue.added == [(("ns", "demo"), True)]


def test_an_ordinary_child_change_uses_the_caches() -> None:
    ctl, queue = controller()
    ctl.on_run("ADDED", run_event())
    queue.added.clear()
    ctl.on_child("MODIFIED", job_event(succeeded=True))
    assert queue.added == [(("ns", "demo"), False)]


@pytest.mark.parametrize(
    "deletion",
    [
        pytest.param(("DELETED", {}), id="deleted"),
        pytest.param(("MODIFIED", {"deletionTimestamp": "2026-12-06T00:00:00Z"}), id="deleting"),
    ],
)
def test_after_the_run_goes_nothing_about_it_is_queued_or_kept(
    deletion: tuple[str, Object],
) -> None:
    ctl, queue = controller()
    ctl.on_run("ADDED", run_event())
    event_type, meta = deletion
    ctl.on_run(event_type, run_event(**meta))
    queue.added.clear()
    assert len(ctl.runs) == 0
    assert "uid-1" in ctl.tombstones
    assert queue.forgotten == [("ns", "demo")]
    ctl.on_child("DELETED", job_event())  # the cascade, after the run's own event
    ctl.on_run("MODIFIED", run_event(generation=2))  # a late event of the deleting run
    assert queue.added == []


def test_a_run_created_again_under_its_name_is_a_new_run() -> None:
    ctl, queue = controller()
    ctl.on_run("ADDED", run_event())
    ctl.on_run("DELETED", run_event())
    queue.added.clear()
    ctl.on_run("ADDED", run_event(uid="uid-2"))
    assert queue.added == [(("ns", "demo"), False)]
    record = ctl.runs.get(("ns", "demo"))
    assert record is not None
    assert record.uid == "uid-2"


def test_the_book_keeps_one_record_per_key_and_drops_it_whole() -> None:
    book = RunBook()
    first = book.track(("ns", "a"), "u1")
    first.generation = 3
    assert book.track(("ns", "a"), "u1") is first
    assert book.key_of("u1") == ("ns", "a")
    replaced = book.track(("ns", "a"), "u2")  # same name, new object
    assert replaced.generation is None
    assert book.key_of("u1") is None
    assert book.drop(("ns", "a")) is replaced
    assert book.key_of("u2") is None
    assert len(book) == 0


def test_tombstones_are_bounded_oldest_first() -> None:
    stones = Tombstones(capacity=3)
    for uid in ("a", "b", "c", "d"):
        stones.bury(uid)
    assert "a" not in stones
    assert all(u in stones for u in "bcd")
    assert len(stones) == 3
