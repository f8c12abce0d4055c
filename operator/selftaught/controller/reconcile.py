"""One reconcile of one run: observe, plan, apply, metrics. Synchronous, run in a worker thread.

This is the thin imperative shell around the pure core (:func:`selftaught.plan.plan`,
:func:`selftaught.jobs.build_job`, :mod:`.observe`). Its Jobs and pods come from the watch
caches when the caller has them (:mod:`.cache`), else from list calls by the run-uid label. It
never reads storage or Secrets; before a run's first Job it reads the ConfigMaps its templates
name (:mod:`.templates`).

The run itself is the operator's memory (its status), so a plan must not rest on an older copy
of it. The watch's copy is used only when it is *provably current*: its resourceVersion is the
one this process last read or wrote (a resourceVersion changes with every write, so equal
versions are the same object). Otherwise -- a write by someone else not yet confirmed, our own
write whose event has not arrived, a 409, a restart -- the run is read from the API. At 1,000
runs this drops the GET of each resync and most triggered reconciles (measured with
``benchmarks/operator_scale.py``); the status write stays guarded by the resourceVersion anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from selftaught import names
from selftaught.api import RunStatus, SelfTaughtRun
from selftaught.controller.apply import Applied, apply_plan
from selftaught.controller.cache import Children
from selftaught.controller.kube import ApiError, Conflict, KubeApi
from selftaught.controller.observe import observe_jobs, summaries_missing
from selftaught.controller.serving import sync_serving
from selftaught.controller.templates import template_problem
from selftaught.jobs import JobSettings
from selftaught.metrics import Metrics
from selftaught.phases import JobState, Phase, Stage
from selftaught.plan import ObservedJob, Plan, plan
from selftaught.policy import WorkloadPolicy

log = logging.getLogger(__name__)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Reconciler:
    """Everything a reconcile needs; one per operator process."""

    api: KubeApi
    metrics: Metrics
    job_settings: JobSettings = field(default_factory=JobSettings)
    #: The operator's workload policy, checked by the planner before each Job it creates.
    policy: WorkloadPolicy = field(default_factory=WorkloadPolicy)
    #: While a stage runs, look again at least this often (stuck pods, missed watch events).
    resync_seconds: float = 60.0
    clock: Callable[[], datetime] = _utcnow
    #: Told of each Job this process created: (run uid, the Job as created).
    on_job_created: Callable[[str, dict[str, Any]], None] | None = None
    #: Whether a run uid's deletion was observed (:class:`.runs.Tombstones`): such a run is
    #: never acted on, even from a copy read before the deletion arrived.
    buried: Callable[[str], bool] = lambda uid: False
    #: Run uid -> the resourceVersion this process last read or wrote (see the module docstring).
    _confirmed: dict[str, str] = field(default_factory=dict, init=False, repr=False)

    def reconcile(
        self,
        namespace: str,
        name: str,
        cached: Children | None = None,
        watched: dict[str, Any] | None = None,
    ) -> float | None:
        """Seconds until this run wants another look (None: only when something changes).

        ``cached``: the run's children from the watch caches; without them they are listed.
        ``watched``: the run as its watch last delivered it; used only if provably current.
        """
        with self.metrics.reconcile():
            body = watched if watched is not None and self.is_current(watched) else None
            if body is None:
                body = self.api.get_run(namespace, name)
                if body is not None:
                    self._confirm(body)
            meta = (body or {}).get("metadata") or {}
            if body is None or meta.get("deletionTimestamp") or self.buried(meta.get("uid", "")):
                self.metrics.forget_run(namespace, name)
                return None
            run = SelfTaughtRun.model_validate(body)
            now = self.clock()
            templates = template_problem(self.api, run)  # only before the first Job
            observed = None
            if cached is not None and cached.run_uid == run.uid:
                observed = observe_jobs(run.name, cached.jobs, cached.pods)
                result = plan(run, observed, now, policy=self.policy, template_problem=templates)
                # Two things must never rest on a copy that may be behind: absorbing a finished
                # Job whose pods' summaries have not arrived, and deleting a Job (an old copy
                # shows a finished Job as still active, and active non-current Jobs go).
                if summaries_missing(cached.jobs, observed) or result.deletes:
                    observed = None
            listed = observed is None
            if observed is None:
                observed = self.list_children(run)
                result = plan(run, observed, now, policy=self.policy, template_problem=templates)
            try:
                applied, result = self.apply(run, body, result, observed, now, templates)
            except Conflict:
                log.info("run %s/%s changed while planning; planning again", namespace, name)
                self._confirmed.pop(run.uid, None)  # read it again
                return 0.0
            except ApiError as error:
                if error.status != 404:
                    raise
                log.info("run %s/%s is gone (%s)", namespace, name, error.message)
                self.metrics.forget_run(namespace, name)
                return None
            if applied.abandoned:  # deleted while planning: nothing more for this run
                self.metrics.forget_run(namespace, name)
                return None
            if applied.resource_version is not None and not self.buried(run.uid):
                self._confirmed[run.uid] = applied.resource_version  # (a buried run's is gone)
            for create in applied.created:
                self.metrics.job_created(create.task.stage)
                log.info("created Job %s/%s", namespace, create.name)
            if self.on_job_created is not None:
                for job in applied.jobs:
                    self.on_job_created(run.uid, job)
            failure = consumed_failure(run.name, run.status, result.status, observed)
            if failure is not None:
                self.metrics.job_failed(*failure)
            self.metrics.observe_transition(run, result.status)
            self.metrics.observe_run(run.model_copy(update={"status": result.status}))
        after = self.requeue_after(result.status, result.requeue_after)
        if templates is not None and after is None:  # a fixed ConfigMap triggers no event
            after = self.resync_seconds
        log.debug(
            "reconciled %s/%s (%s): %s %s, created %s, deleted %s, next look in %s s",
            namespace, name, "listed" if listed else "cached",
            result.status.phase, result.status.stage, [c.name for c in applied.created],
            [d.name for d in result.deletes], after,
        )  # fmt: skip
        return after

    def apply(
        self,
        run: SelfTaughtRun,
        body: dict[str, Any],
        result: Plan,
        observed: list[ObservedJob],
        now: datetime,
        templates: str | None = None,
    ) -> tuple[Applied, Plan]:
        """Apply ``result``; a create the API server refuses is planned again as an observation
        (:class:`selftaught.plan.CreateRejected`), so the run's status and Events tell it."""
        applied = self._apply(run, body, result, now)
        rejected = applied.rejected
        if rejected is not None:
            log.warning(
                "run %s/%s: the API server refused Job %s: %s %s: %s",
                run.namespace, run.name, rejected.name, rejected.code, rejected.reason,
                rejected.message,
            )  # fmt: skip
            result = plan(
                run,
                observed,
                now,
                rejected=rejected,
                policy=self.policy,
                template_problem=templates,
            )
            applied = self._apply(run, body, result, now)
        return applied, result

    def _apply(
        self, run: SelfTaughtRun, body: dict[str, Any], result: Plan, now: datetime
    ) -> Applied:
        # The judge server first (spec.serve): what it records joins the one status write.
        sync_serving(
            self.api,
            run,
            result,
            job_settings=self.job_settings,
            now=now,
            may_create=lambda: not self.buried(run.uid),
        )
        return apply_plan(
            self.api,
            run,
            body.get("status") or {},
            result,
            job_settings=self.job_settings,
            now=now,
            may_create=lambda: not self.buried(run.uid),
        )

    def is_current(self, body: dict[str, Any]) -> bool:
        """Whether ``body`` is the run as this process last read or wrote it."""
        meta = body.get("metadata") or {}
        version = meta.get("resourceVersion")
        return version is not None and self._confirmed.get(meta.get("uid", "")) == version

    def _confirm(self, body: dict[str, Any]) -> None:
        meta = body.get("metadata") or {}
        if meta.get("uid") and meta.get("resourceVersion"):
            self._confirmed[meta["uid"]] = meta["resourceVersion"]

    def forget(self, run_uid: str) -> None:
        self._confirmed.pop(run_uid, None)

    def list_children(self, run: SelfTaughtRun) -> list[ObservedJob]:
        """The run's Jobs and their pods, listed from the API server by the run-uid label."""
        jobs = self.api.list_children(run.namespace, run.uid, "jobs")
        pods = self.api.list_children(run.namespace, run.uid, "pods") if jobs else []
        return observe_jobs(run.name, jobs, pods)

    def requeue_after(self, status: RunStatus, wanted: float | None) -> float | None:
        if Phase(status.phase).is_terminal():
            return None
        if status.children:
            return min(wanted, self.resync_seconds) if wanted is not None else self.resync_seconds
        return wanted


def consumed_failure(
    run_name: str, old: RunStatus, new: RunStatus, jobs: list[ObservedJob]
) -> tuple[Stage, str] | None:
    """(stage, reason) when this plan moved past a failed or stuck attempt, else None."""
    if old.stage is None:
        return None
    current = names.job_name(run_name, old.iteration, old.stage, old.attempt.number)
    job = next((j for j in jobs if j.name == current), None)
    if job is None or job.state is JobState.SUCCEEDED:
        return None
    moved = (new.iteration, new.stage, new.attempt.number) != (
        old.iteration,
        old.stage,
        old.attempt.number,
    ) or (new.phase == Phase.FAILED and old.phase != Phase.FAILED)
    if not moved:
        return None
    if job.state is JobState.FAILED and job.failure is not None:
        return Stage(job.stage), job.failure.value
    if job.stuck_reason:
        return Stage(job.stage), job.stuck_reason
    return None
