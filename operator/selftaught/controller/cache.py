"""A run's Jobs and pods, served from kopf's in-memory indexes instead of list calls.

kopf already watches our Jobs and pods (that is how the handlers are triggered), so every child
the planner needs is in memory; listing them again per transition (by label selector) doubled
the API traffic and, with hundreds of runs, queued the reconciles behind slow list calls. The
``@kopf.index`` handlers in :mod:`.handlers` keep the latest body of each child by run uid; kopf
fills them before any handler runs, so the first reconcile after a restart sees every child.

The run itself is still read from the API server: its status is the operator's memory, and a
plan from an older copy of it would act on a position the run has left. A child that is behind
is mostly harmless, because a Job only moves forward (pending, running, finished): an older copy
makes the planner wait for the next event, or create a Job that exists (success). Two plans must
not rest on such a copy, and the reconcile lists the children from the API instead when a plan
would make them: absorbing a finished Job whose pods' summaries have not arrived yet (its counts
and scores would be lost for good; :func:`.observe.summaries_missing`), and deleting a Job (an
older copy shows a finished Job as still active, and active Jobs off the current position go).

Reads happen on the event loop (kopf mutates the indexes there); the reconcile thread only
receives the copied lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    """Children by run uid, from two kopf indexes (``Index[str, Store[dict]]``)."""

    def __init__(
        self, jobs: Mapping[str, Iterable[Object]], pods: Mapping[str, Iterable[Object]]
    ) -> None:
        self._jobs, self._pods = jobs, pods

    def children(self, run_uid: str) -> Children:
        jobs, pods = self._jobs.get(run_uid, ()), self._pods.get(run_uid, ())
        return Children(run_uid, list(jobs), list(pods))
