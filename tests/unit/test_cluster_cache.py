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
