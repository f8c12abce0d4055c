"""Which copy of a run a reconcile plans from: the watch's only when provably current."""

from __future__ import annotations

import copy
from typing import Any

from selftaught.controller.cache import Children
from selftaught.controller.kube import Conflict
from selftaught.controller.reconcile import Reconciler
from selftaught.metrics import Metrics
from tests.unit.planning import make_run

Object = dict[str, Any]


class FakeApi:
    """The run on a pretend server: each write bumps its resourceVersion."""

    def __init__(self, body: Object) -> None:
        self.body = body
        self.gets = 0
        self.conflict_next = False

    def get_run(self, namespace: str, name: str) -> Object | None:
        self.gets += 1
        return copy.deepcopy(self.body)

    def patch_run_status(self, namespace: str, name: str, patch: Object) -> Object:
        if self.conflict_next or patch["metadata"]["resourceVersion"] != self.version:
            self.conflict_next = False
            raise Conflict(409, "Conflict", "the object has been modified")
        self.body["status"] = {**(self.body.get("status") or {}), **patch["status"]}
        self.body["metadata"]["resourceVersion"] = str(int(self.version) + 1)
        return copy.deepcopy(self.body)

    def create(self, manifest: Object) -> Object | None:
        return manifest

    @property
    def version(self) -> str:
        return str(self.body["metadata"]["resourceVersion"])


def setup() -> tuple[Reconciler, FakeApi]:
    body = make_run().model_dump(by_alias=True, exclude_none=True)
    body["metadata"]["resourceVersion"] = "10"
    api = FakeApi(body)
    return Reconciler(api, Metrics()), api  # type: ignore[arg-type]


def no_children() -> Children:
    return Children("uid-1", [], [])


def test_the_watched_run_is_used_only_at_the_version_last_read_or_written() -> None:
    reconciler, api = setup()
    stale = copy.deepcopy(api.body)

    reconciler.reconcile("ns", "demo", no_children(), watched=stale)
    assert api.gets == 1  # nothing confirmed yet: read it; the plan then wrote the status
    assert api.version == "11"
    assert not reconciler.is_current(stale)  # the watch has not delivered our write

    delivered = copy.deepcopy(api.body)  # the watch event of our own write
    assert reconciler.is_current(delivered)
    reconciler.reconcile("ns", "demo", no_children(), watched=delivered)
    assert api.gets == 1  # planned from the watch's copy: no read

    api.body["metadata"]["resourceVersion"] = "12"  # someone else wrote; event not seen yet
    other = copy.deepcopy(api.body)
    assert not reconciler.is_current(other)
    reconciler.reconcile("ns", "demo", no_children(), watched=other)
    assert api.gets == 2


def test_a_conflict_forgets_the_confirmed_version() -> None:
    reconciler, api = setup()
    reconciler.reconcile("ns", "demo", no_children())  # reads, writes the first status
    delivered = copy.deepcopy(api.body)
    assert reconciler.is_current(delivered)
    delivered["status"] = {}  # so that the next plan writes a status again
    api.conflict_next = True
    assert reconciler.reconcile("ns", "demo", no_children(), watched=delivered) == 0.0
    assert not reconciler.is_current(delivered)  # the next reconcile reads the run again
