"""The planner: (run, observed child Jobs, now) -> (actions, new status). Pure, no I/O.

One module per policy, each with its own table test (``tests/unit/test_plan_<policy>.py``):

* :mod:`.passes` -- the pass itself: start, walk forward, create the current Job, finish;
* :mod:`.immutable` -- fence the fields that decide the data once the first Job is planned;
* :mod:`.resume` -- ``resumeFrom`` rewinds, raising ``iterations`` extends;
* :mod:`.suspend` -- pause at a stage boundary;
* :mod:`.retry` -- failed and stuck attempts: backoff, budget, pending timeout;
* :mod:`.rejected` -- a Job create the API server refused (4xx): fail or wait;
* :mod:`.absorb` -- fold a finished stage's summaries into the iteration record;
* :mod:`.best` -- best iteration and early stop;
* :mod:`.summary` -- ``status.summary``, the one line ``kubectl get -o wide`` shows;
* :mod:`.nothing_kept` -- an iteration whose judge kept nothing ends the run early;
* :mod:`.observed` (the input), :mod:`.actions` (the output), :mod:`.state` (the pass state).
"""

from __future__ import annotations

from selftaught.plan.actions import Action, CreateJob, DeleteJob, Event, Plan
from selftaught.plan.immutable import fingerprint, fingerprints
from selftaught.plan.observed import ObservedJob
from selftaught.plan.passes import plan
from selftaught.plan.rejected import CreateRejected
from selftaught.plan.retry import BACKOFF_BASE_SECONDS, BACKOFF_CAP_SECONDS, backoff

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "BACKOFF_CAP_SECONDS",
    "Action",
    "CreateJob",
    "CreateRejected",
    "DeleteJob",
    "Event",
    "ObservedJob",
    "Plan",
    "backoff",
    "fingerprint",
    "fingerprints",
    "plan",
]
