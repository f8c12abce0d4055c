"""A run's Jobs and pods, served from kopf's in-memory indexes instead of list calls.

kopf already watches our Jobs and pods (that is how the handlers are triggered), so every child
the planner needs is in memory; listing them again per transition (by label selector) doubled
the API traffic and, with hundreds of runs, queued the reconciles behind slow list calls. The
``@kopf.index`` handlers in :mod:`.handlers` keep the latest body of each child by run uid; kopf
fills them before any handler runs, so the first reconcile after a restart sees every child.

The run itself is taken from its watch only when provably current (:mod:`.reconcile`): its
status is the operator's memory, and a plan from an older copy of it would act on a position the
run has left. A child that is behind
is mostly harmless, because a Job only moves forward (pending, running, finished): an older copy
makes the planner wait for the next event, or create a Job that exists (success). Two plans must
not rest on such a copy, and the reconcile lists the children from the API instead when a plan
would make them: absorbing a finished Job whose pods' summaries have not arrived yet (its counts
and scores would be lost for good; :func:`.observe.summaries_missing`), and deleting a Job (an
older copy shows a finished Job as still active, and active Jobs off the current position go).

Reads happen on the event loop (kopf mutates the indexes there); the reconcile thread only
receives the copied lists. The Jobs the reconciles create are added from their threads, under a
lock (:meth:`ChildCache.job_created`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

Object = dict[str, Any]


@dataclass(frozen=True)
class Children:
    """A run's Jobs and pods as the watches last delivered them."""

    #: The run these belong to (a run deleted and created again under its name has a new uid).
    run_uid: str
    jobs: list[Object]
    pods: list[Object]


class ChildCache:
    """Children by run uid, from two kopf indexes (``Index[str, Store[dict]]``), plus the Jobs
    this process created that the watch has not delivered yet.

    Those *expected* Jobs are the controller-runtime "expectations" idea: without them, any
    event in the moment between our create and the Job's watch event (a pod of the previous
    stage going away, say) planned the same create again, a wasted write answered 409.
    An expectation ends when the index has the Job, or after :attr:`expect_seconds` (a Job
    deleted before the watch saw it must not linger; the next fresh reconcile finds it gone).
    """

    def __init__(
        self,
        jobs: Mapping[str, Iterable[Object]],
        pods: Mapping[str, Iterable[Object]],
        *,
        expect_seconds: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._jobs, self._pods = jobs, pods
        self.expect_seconds = expect_seconds
        self._clock = clock
        self._expected: dict[str, dict[str, tuple[float, Object]]] = {}
        self._lock = threading.Lock()

    def children(self, run_uid: str) -> Children:
        jobs = list(self._jobs.get(run_uid, ()))
        pods = list(self._pods.get(run_uid, ()))
        with self._lock:
            expected = self._expected.get(run_uid)
            if expected:
                now = self._clock()
                seen = {_name(job) for job in jobs}
                for name, (since, _) in list(expected.items()):
                    if name in seen or now - since > self.expect_seconds:
                        del expected[name]
                jobs.extend(job for _, job in expected.values())
                if not expected:
                    del self._expected[run_uid]
        return Children(run_uid, jobs, pods)

    def job_created(self, run_uid: str, job: Object) -> None:
        """Called from reconcile threads with the Job as the create returned it."""
        with self._lock:
            self._expected.setdefault(run_uid, {})[_name(job)] = (self._clock(), job)

    def forget(self, run_uid: str) -> None:
        with self._lock:
            self._expected.pop(run_uid, None)


def _name(job: Mapping[str, Any]) -> str:
    return str((job.get("metadata") or {}).get("name", ""))
