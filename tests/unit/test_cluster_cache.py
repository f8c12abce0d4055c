"""The reconcile's copy of a run's children from kopf's indexes."""

from __future__ import annotations

from selftaught.controller.cache import ChildCache


def test_children_are_the_runs_own_and_copied() -> None:
    jobs = {"u1": [{"metadata": {"name": "r-i0-sel-a0"}}], "u2": [{"metadata": {"name": "x"}}]}
    pods = {"u1": [{"metadata": {"name": "r-i0-sel-a0-abc"}}]}
    cache = ChildCache(jobs, pods)
    children = cache.children("u1")
    assert children.run_uid == "u1"
    assert [j["metadata"]["name"] for j in children.jobs] == ["r-i0-sel-a0"]
    assert [p["metadata"]["name"] for p in children.pods] == ["r-i0-sel-a0-abc"]
    jobs["u1"].append({"metadata": {"name": "r-i0-pairs-a0"}})  # the index moves on ...
    assert len(children.jobs) == 1  # ... the reconcile's copy does not
    assert cache.children("u3").jobs == []


def test_a_created_job_counts_until_the_watch_delivers_it() -> None:
    now = [0.0]
    jobs: dict[str, list[dict[str, object]]] = {}
    cache = ChildCache(jobs, {}, expect_seconds=60.0, clock=lambda: now[0])
    created = {"metadata": {"name": "r-i0-sel-a0"}, "status": {}}
    cache.job_created("u1", created)
    assert cache.children("u1").jobs == [created]  # not in the index yet: still seen
    delivered = {"metadata": {"name": "r-i0-sel-a0"}, "status": {"active": 1}}
    jobs["u1"] = [delivered]
    assert cache.children("u1").jobs == [delivered]  # the index's copy, once, not both
    jobs["u1"] = []  # deleted since: the expectation ended when the index had it
    assert cache.children("u1").jobs == []


def test_an_expected_job_that_never_shows_up_expires() -> None:
    now = [0.0]
    cache = ChildCache({}, {}, expect_seconds=60.0, clock=lambda: now[0])
    cache.job_created("u1", {"metadata": {"name": "gone"}})
    now[0] = 61.0
    assert cache.children("u1").jobs == []
    cache.job_created("u2", {"metadata": {"name": "x"}})
    cache.forget("u2")
    assert cache.children("u2").jobs == []
